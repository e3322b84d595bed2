variable "name" {
  description = "Base name of the TPU VMs (already a safe GCE name); node i is named <name>-<i>."
  type        = string
}

variable "labels" {
  description = "Labels put on the TPU VMs (skyplan-plan, skyplan-task, ...)."
  type        = map(string)
}

variable "zone" {
  description = "Zone offering the TPU type, e.g. us-central2-b."
  type        = string
}

variable "accelerator_type" {
  description = "TPU type, e.g. v5litepod-8."
  type        = string
}

variable "runtime_version" {
  description = "TPU software version (OS image), e.g. tpu-ubuntu2204-base."
  type        = string
}

variable "spot" {
  description = "Create Spot TPUs."
  type        = bool
  default     = false
}

variable "user_data" {
  description = "The task's #cloud-config text, read by cloud-init from the user-data metadata key."
  type        = string
}

variable "storage" {
  description = "Base URI where the run stages task outputs; written to /etc/skyplan/storage on the machines."
  type        = string
}

variable "num_nodes" {
  description = "How many TPU slices the task runs on."
  type        = number
  default     = 1
}

variable "network" {
  description = "VPC network the stack owns (no inbound rule; never the project's default network)."
  type        = string
}

variable "subnetwork" {
  description = "Subnetwork of the VMs' region in that network (Private Google Access on)."
  type        = string
}

variable "network_tags" {
  description = "Network tags (firewall rules for asked ports target them)."
  type        = list(string)
  default     = []
}

variable "service_account_email" {
  description = "Service account the TPU VMs run as (storage access); null for none."
  type        = string
  default     = null
}
