locals {
  # cloud-init/<task>.yaml carries two placeholder words for values known only when Terraform
  # runs (skyplan/targets/cloud.py): the run's storage URI, JSON-quoted so it stays one YAML
  # scalar, and each machine's rank (substituted per node below).
  user_data = replace(var.user_data, "SKYPLAN_STORAGE_TOKEN", jsonencode(var.storage))
}

# One task's VMs on Compute Engine. The executor powers the VM off when the task ends; a
# stopped VM no longer bills for vCPUs/GPUs, and the apply loop then destroys it (GCE has no
# "terminate on shutdown" setting for standard VMs).
resource "google_compute_instance" "node" {
  count = var.num_nodes

  name         = "${var.name}-${count.index}"
  zone         = var.zone
  machine_type = var.machine_type
  labels       = var.labels
  tags         = var.network_tags

  boot_disk {
    auto_delete = true
    initialize_params {
      # Only pd-extreme takes provisioned IOPS; null leaves the other types at theirs.
      image            = var.image
      size             = var.disk_gb
      type             = var.disk_type
      provisioned_iops = var.disk_iops
      labels           = var.labels
    }
  }

  # An external address gives the VM egress without a Cloud NAT; ingress is still closed
  # unless a firewall rule for asked ports targets the VM's network tags.
  network_interface {
    network = var.network
    access_config {}
  }

  # GPUs of n1 hosts are attached; a2/a3/g2 machine types have theirs built in and take no
  # guest_accelerator ("GPU machine types", Compute Engine docs).
  dynamic "guest_accelerator" {
    for_each = var.accelerator_count > 0 ? [1] : []
    content {
      type  = var.accelerator_type
      count = var.accelerator_count
    }
  }

  # Spot VMs: provisioning_model SPOT, no automatic restart, deleted when preempted. VMs with
  # GPUs cannot live-migrate, so host maintenance must terminate them ("Create VMs with
  # attached GPUs" and "Spot VMs", Compute Engine docs).
  scheduling {
    provisioning_model          = var.spot ? "SPOT" : "STANDARD"
    preemptible                 = var.spot
    automatic_restart           = !var.spot
    instance_termination_action = var.spot ? "DELETE" : null
    on_host_maintenance         = var.spot || var.gpu ? "TERMINATE" : "MIGRATE"
  }

  dynamic "service_account" {
    for_each = var.service_account_email == null ? [] : [var.service_account_email]
    content {
      email  = service_account.value
      scopes = ["cloud-platform"]
    }
  }

  metadata = {
    user-data              = replace(local.user_data, "SKYPLAN_NODE_RANK_TOKEN", "'${count.index}'")
    block-project-ssh-keys = "true"
  }
}
