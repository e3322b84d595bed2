# One local "machine" per node: a process group on this machine, holding `cpus` CPU slots of its
# zone (flock'ed slot files shared by every skyplan run on the machine) while the task runs.
# The create-time provisioner blocks until the task finished; its exit code is in status.json.
resource "terraform_data" "node" {
  count = var.num_nodes

  triggers_replace = {
    executor_sha256 = var.executor_sha256
    storage         = var.storage
    plan            = var.plan
  }

  input = {
    task       = var.task
    zone       = var.zone
    work_dir   = "${var.work_dir}/node-${count.index}"
    module_dir = abspath(path.module)
  }

  provisioner "local-exec" {
    command = "bash \"$SKYPLAN_MODULE_DIR/run.sh\""
    environment = {
      SKYPLAN_MODULE_DIR     = self.input.module_dir
      SKYPLAN_EXECUTOR       = var.executor
      SKYPLAN_TASK           = var.task
      SKYPLAN_ZONE           = var.zone
      SKYPLAN_TASK_CPUS      = tostring(var.cpus)
      SKYPLAN_ZONE_CPUS      = tostring(var.zone_cpus)
      SKYPLAN_INJECT_FAILURE = var.inject_failure == null ? "" : var.inject_failure
      SKYPLAN_STORAGE        = var.storage
      SKYPLAN_WORK_DIR       = self.input.work_dir
      SKYPLAN_SHUTDOWN       = "0"
      SKYPLAN_NODE_RANK      = tostring(count.index)
      SKYPLAN_NUM_NODES      = tostring(var.num_nodes)
      SKYPLAN_NODE_IP        = "127.0.0.1"
      SKYPLAN_PLAN           = var.plan
    }
  }

  # Turning the task off (or `skyplan destroy`) stops whatever is still running in its process
  # group. Terraform skips destroy provisioners of tainted resources (an interrupted create), so
  # skyplan also reaps the recorded process groups itself after every destroy.
  provisioner "local-exec" {
    when    = destroy
    command = "bash \"$SKYPLAN_MODULE_DIR/stop.sh\""
    environment = {
      SKYPLAN_MODULE_DIR = self.input.module_dir
      SKYPLAN_WORK_DIR   = self.input.work_dir
    }
  }
}
