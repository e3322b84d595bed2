variable "task" {
  description = "Task name, as written in the spec."
  type        = string
}

variable "zone" {
  description = "Local zone (a slot group on this machine) the task was placed in."
  type        = string
}

variable "executor" {
  description = "Absolute path of the task's executor script."
  type        = string
}

variable "executor_sha256" {
  description = "Hash of the executor script: a changed script replaces the task's machine."
  type        = string
}

variable "work_dir" {
  description = "Absolute directory for the task's logs, PID file and scratch space."
  type        = string
}

variable "cpus" {
  description = "CPU slots the task holds while it runs."
  type        = number
}

variable "zone_cpus" {
  description = "CPU slots the zone has."
  type        = number
}

variable "num_nodes" {
  description = "Processes started for the task (SKYPLAN_NODE_RANK 0..n-1)."
  type        = number
  default     = 1
}

variable "inject_failure" {
  description = "Testing aid from local.yaml: \"capacity\" makes the zone refuse every task."
  type        = string
  default     = null
  nullable    = true
}

variable "storage" {
  description = "Base URI where task outputs are staged (file:// for local)."
  type        = string
}

variable "plan" {
  description = "Plan name."
  type        = string
}
