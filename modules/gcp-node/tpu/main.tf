locals {
  # cloud-init/<task>.yaml carries two placeholder words for values known only when Terraform
  # runs (skyplan/targets/cloud.py): the run's storage URI, JSON-quoted so it stays one YAML
  # scalar, and each machine's rank (substituted per node below).
  user_data = replace(var.user_data, "SKYPLAN_STORAGE_TOKEN", jsonencode(var.storage))
}

# One task's Cloud TPU VMs.
resource "google_tpu_v2_vm" "node" {
  provider = google-beta
  count    = var.num_nodes

  name             = "${var.name}-${count.index}"
  zone             = var.zone
  accelerator_type = var.accelerator_type
  runtime_version  = var.runtime_version
  labels           = var.labels
  tags             = var.network_tags

  # No external address: the subnetwork's Private Google Access reaches Cloud Storage and Google
  # APIs, and the stack's Cloud NAT in the region gives egress to the internet (pip, images).
  network_config {
    network             = var.network
    subnetwork          = var.subnetwork
    enable_external_ips = false
  }

  dynamic "scheduling_config" {
    for_each = var.spot ? [1] : []
    content {
      spot = true
    }
  }

  dynamic "service_account" {
    for_each = var.service_account_email == null ? [] : [var.service_account_email]
    content {
      email = service_account.value
      scope = ["https://www.googleapis.com/auth/cloud-platform"]
    }
  }

  metadata = {
    user-data = replace(local.user_data, "SKYPLAN_NODE_RANK_TOKEN", "'${count.index}'")
  }
}
