# One task on one of the user's machines. Keys never pass through Terraform: the connection
# uses the per-run ssh-agent skyplan starts (agent = true), and the host must present the key
# recorded in known_hosts (host_key). Inputs and outputs move with scp, by the same agent and
# the same pinned host key, between the run's storage on this machine and the host:
#   ~/.skyplan/runs/<run_id>/storage/<task>/…   (SKYPLAN_STORAGE on the host)
#   ~/.skyplan/runs/<run_id>/<task>/            (executor.sh, node.sh, work/)
locals {
  remote_root = ".skyplan/runs/${var.run_id}"
  remote_dir  = "${local.remote_root}/${var.slug}"
}

resource "terraform_data" "node" {
  triggers_replace = {
    executor_sha256 = var.executor_sha256
    storage         = var.storage
    plan            = var.plan
    host            = "${var.user}@${var.address}:${var.port}"
  }

  input = {
    task            = var.task
    host            = var.host
    address         = var.address
    port            = var.port
    user            = var.user
    host_key        = var.host_key
    connect_timeout = var.connect_timeout
    remote_dir      = local.remote_dir
  }

  lifecycle {
    precondition {
      condition     = var.host_key != ""
      error_message = "skyplan-ssh: host ${var.host} (${var.address}:${var.port}) has no key in known_hosts; verify its fingerprint and add it (ssh-keyscan -p ${var.port} ${var.address} >> ~/.ssh/known_hosts)."
    }
  }

  connection {
    type     = "ssh"
    host     = self.input.address
    port     = self.input.port
    user     = self.input.user
    agent    = true
    host_key = self.input.host_key
    timeout  = self.input.connect_timeout
  }

  provisioner "remote-exec" {
    inline = ["mkdir -p '${local.remote_dir}/work' '${local.remote_root}/storage'"]
  }

  provisioner "file" {
    source      = var.executor
    destination = "${local.remote_dir}/executor.sh"
  }

  provisioner "file" {
    source      = "${path.module}/node.sh"
    destination = "${local.remote_dir}/node.sh"
  }

  provisioner "local-exec" {
    command = "bash \"$SKYPLAN_MODULE_DIR/sync.sh\" push"
    environment = {
      SKYPLAN_MODULE_DIR = abspath(path.module)
      SKYPLAN_STORAGE    = var.storage
      SKYPLAN_UPSTREAM   = join(" ", var.upstream)
      SKYPLAN_SECRETS    = join(" ", var.secrets)
      SKYPLAN_SLUG       = var.slug
      SKYPLAN_REMOTE     = "${var.user}@${var.address}"
      SKYPLAN_PORT       = tostring(var.port)
      SKYPLAN_REMOTE_DIR = local.remote_root
    }
  }

  provisioner "remote-exec" {
    inline = ["bash '${local.remote_dir}/node.sh' '${var.run_id}' '${var.slug}' '${var.cpus}' '${var.host_cpus}' '${var.host}'"]
  }

  provisioner "local-exec" {
    command = "bash \"$SKYPLAN_MODULE_DIR/sync.sh\" pull"
    environment = {
      SKYPLAN_MODULE_DIR = abspath(path.module)
      SKYPLAN_STORAGE    = var.storage
      SKYPLAN_UPSTREAM   = ""
      SKYPLAN_SECRETS    = ""
      SKYPLAN_SLUG       = var.slug
      SKYPLAN_REMOTE     = "${var.user}@${var.address}"
      SKYPLAN_PORT       = tostring(var.port)
      SKYPLAN_REMOTE_DIR = local.remote_root
    }
  }

  # Turning the task off stops what may still run on the host. An unreachable host must not
  # block the teardown of everything else, so a failure here is only a warning.
  provisioner "remote-exec" {
    when       = destroy
    on_failure = continue
    inline     = ["f='${self.input.remote_dir}/work/pid'; if [ -f \"$f\" ]; then kill -TERM -- \"-$(cat \"$f\")\" 2>/dev/null; rm -f \"$f\"; fi; true"]
  }
}
