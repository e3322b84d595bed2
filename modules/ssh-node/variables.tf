variable "task" {
  description = "Task name, as written in the spec."
  type        = string
}

variable "slug" {
  description = "The task's storage key and remote directory name."
  type        = string
}

variable "host" {
  description = "Pool host name (the zone the task was placed in)."
  type        = string
}

variable "address" {
  description = "Host name or IP address to connect to."
  type        = string
}

variable "port" {
  description = "SSH port."
  type        = number
  default     = 22
}

variable "user" {
  description = "Login user."
  type        = string
}

variable "host_key" {
  description = "The host's public key (\"ssh-ed25519 AAAA…\") from known_hosts; the connection is refused unless the host presents it."
  type        = string
}

variable "connect_timeout" {
  description = "How long to keep trying to connect before the host counts as unreachable."
  type        = string
  default     = "60s"
}

variable "executor" {
  description = "Absolute path of the task's executor script on this machine."
  type        = string
}

variable "executor_sha256" {
  description = "Hash of the executor script: a changed script replaces the task's machine."
  type        = string
}

variable "upstream" {
  description = "Storage keys of the tasks whose outputs this task reads (pushed to the host first)."
  type        = list(string)
  default     = []
}

variable "secrets" {
  description = "Names of environment variables whose values (from skyplan apply's environment) the task needs; values never pass through Terraform."
  type        = list(string)
  default     = []
}

variable "cpus" {
  description = "CPU slots the task holds on the host while it runs."
  type        = number
}

variable "host_cpus" {
  description = "CPU slots the host has."
  type        = number
}

variable "run_id" {
  description = "Names this run's directory on the host (~/.skyplan/runs/<run_id>)."
  type        = string
}

variable "storage" {
  description = "file:// URI of the run's staging directory on this machine."
  type        = string
}

variable "plan" {
  description = "Plan name."
  type        = string
}
