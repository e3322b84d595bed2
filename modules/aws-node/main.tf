locals {
  # cloud-init/<task>.yaml carries two placeholder words for values known only when Terraform
  # runs (skyplan/targets/cloud.py): the run's storage URI, JSON-quoted so it stays one YAML
  # scalar, and each machine's rank (substituted per node below).
  user_data = replace(var.user_data, "SKYPLAN_STORAGE_TOKEN", jsonencode(var.storage))
}

# One task's machines on EC2. The executor in user data runs the task, then powers the machine
# off; instance_initiated_shutdown_behavior = "terminate" turns that power-off into termination,
# so a finished or crashed task never keeps billing (EC2 User Guide, "Change the instance
# initiated shutdown behavior").
resource "aws_instance" "node" {
  count = var.num_nodes

  ami                                  = var.ami
  instance_type                        = var.instance_type
  subnet_id                            = var.subnet_id
  vpc_security_group_ids               = var.security_group_ids
  associate_public_ip_address          = true
  iam_instance_profile                 = var.instance_profile
  instance_initiated_shutdown_behavior = "terminate"
  user_data                            = replace(local.user_data, "SKYPLAN_NODE_RANK_TOKEN", "'${count.index}'")
  user_data_replace_on_change          = true

  # A one-time Spot request ends with the instance; "terminate" is the only interruption
  # behaviour allowed together with instance_initiated_shutdown_behavior = "terminate".
  dynamic "instance_market_options" {
    for_each = var.spot ? [1] : []
    content {
      market_type = "spot"
      spot_options {
        instance_interruption_behavior = "terminate"
        spot_instance_type             = "one-time"
      }
    }
  }

  root_block_device {
    volume_size           = var.disk_gb
    volume_type           = var.disk_type
    iops                  = var.disk_iops
    throughput            = var.disk_throughput
    encrypted             = true
    delete_on_termination = true
    tags                  = merge(var.tags, { Name = "${var.name}-${count.index}" })
  }

  # IMDSv2 only; hop limit 2 so containers started by the task can still reach it.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }

  tags = merge(var.tags, { Name = "${var.name}-${count.index}" })
}
