variable "name" {
  description = "Base name of the VMs (already a safe GCE name); node i is named <name>-<i>."
  type        = string
}

variable "labels" {
  description = "Labels put on the VMs and their disks (skyplan-plan, skyplan-task, ...)."
  type        = map(string)
}

variable "zone" {
  description = "GCE zone, e.g. us-central1-a."
  type        = string
}

variable "machine_type" {
  description = "Machine type, e.g. n1-standard-8 or a2-highgpu-1g."
  type        = string
}

variable "image" {
  description = "Boot image self link."
  type        = string
}

variable "disk_gb" {
  description = "Boot disk size in GB."
  type        = number
  default     = 256
}

variable "spot" {
  description = "Run as Spot VMs that are deleted on preemption."
  type        = bool
  default     = false
}

variable "gpu" {
  description = "The machine has GPUs (attached or built in): live migration is not possible."
  type        = bool
  default     = false
}

variable "accelerator_type" {
  description = "GPU type to attach (nvidia-tesla-t4, ...); empty for none or for built-in GPUs."
  type        = string
  default     = ""
}

variable "accelerator_count" {
  description = "How many GPUs of accelerator_type to attach."
  type        = number
  default     = 0
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
  description = "How many identical VMs the task runs on."
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
  description = "Service account the VMs run as (storage access); null for none."
  type        = string
  default     = null
}

variable "disk_type" {
  description = "Boot disk type (resources.disk_tier: pd-standard, pd-balanced, pd-ssd, pd-extreme, hyperdisk-balanced)."
  type        = string
  default     = "pd-balanced"
}

variable "disk_iops" {
  description = "Provisioned IOPS of a pd-extreme boot disk; null for the other types."
  type        = number
  default     = null
}

variable "max_run_seconds" {
  description = "Cloud-side ceiling: the VMs are deleted this long after they start (planned hours x 3 + 1 h, skyplan/ceiling.py)."
  type        = number
}

variable "self_delete" {
  description = "Grant service_account_email the deletion of each VM, so a VM deletes itself when its task ends."
  type        = bool
  default     = false
}
