locals {
  # cloud-init/<task>.yaml carries two placeholder words for values known only when Terraform
  # runs (skyplan/targets/cloud.py): the run's storage URI, JSON-quoted so it stays one YAML
  # scalar, and each machine's rank (substituted per node below).
  user_data = replace(var.user_data, "SKYPLAN_STORAGE_TOKEN", jsonencode(var.storage))
}

# One task's VMs on Compute Engine. When the task ends the executor deletes the VM through its
# service account (skyplan/endstep.py; a stopped VM would still bill for its disk), then powers
# it off. max_run_duration with DELETE is the cloud-side ceiling: the VM and its auto-delete boot
# disk go even if nobody runs `skyplan apply` any more ("Limit the run time of a VM", Compute
# Engine docs).
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

  # An ephemeral external address gives the VM egress without a Cloud NAT (which would charge
  # per GB processed); the stack's own network has no inbound rule, so ingress stays closed
  # unless a firewall rule for asked ports targets the VM's network tags.
  network_interface {
    network    = var.network
    subnetwork = var.subnetwork
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
    instance_termination_action = "DELETE"
    on_host_maintenance         = var.spot || var.gpu ? "TERMINATE" : "MIGRATE"

    max_run_duration {
      seconds = var.max_run_seconds
    }
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

# The VM may delete itself at the end of its task, and only itself: the role is granted on each
# instance, not on the project ("Compute Engine IAM roles": roles/compute.instanceAdmin.v1 holds
# compute.instances.delete).
resource "google_compute_instance_iam_member" "self_delete" {
  # A flag known when the stack is rendered: the account's email is known only after apply.
  count = var.self_delete ? var.num_nodes : 0

  zone          = var.zone
  instance_name = google_compute_instance.node[count.index].name
  role          = "roles/compute.instanceAdmin.v1"
  member        = "serviceAccount:${var.service_account_email}"
}
