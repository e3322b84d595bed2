variable "name" {
  description = "Base name of the machines (already a safe cloud name); node i is named <name>-<i>."
  type        = string
}

variable "tags" {
  description = "Tags put on every resource (skyplan-plan, skyplan-task, ...)."
  type        = map(string)
}

variable "instance_type" {
  description = "EC2 instance type, e.g. p4d.24xlarge."
  type        = string
}

variable "ami" {
  description = "AMI id to boot."
  type        = string
}

variable "subnet_id" {
  description = "Subnet to launch into; it fixes the availability zone (the root picks it by zone id)."
  type        = string
}

variable "security_group_ids" {
  description = "Security groups of the machines."
  type        = list(string)
}

variable "spot" {
  description = "Launch as one-time Spot instances that terminate on interruption."
  type        = bool
  default     = false
}

variable "disk_gb" {
  description = "Root volume size in GiB."
  type        = number
  default     = 256
}

variable "user_data" {
  description = "The task's #cloud-config text (at most 16 KiB, checked at render time)."
  type        = string
}

variable "storage" {
  description = "Base URI where the run stages task outputs; written to /etc/skyplan/storage on the machines."
  type        = string
}

variable "num_nodes" {
  description = "How many identical machines the task runs on."
  type        = number
  default     = 1
}

variable "instance_profile" {
  description = "IAM instance profile name granting access to the run's storage; null for none."
  type        = string
  default     = null
}

variable "disk_type" {
  description = "EBS volume type of the root disk (resources.disk_tier: standard, gp3 or io2)."
  type        = string
  default     = "gp3"
}

variable "disk_iops" {
  description = "Provisioned IOPS of the root disk (gp3, io2); null: the type's baseline."
  type        = number
  default     = null
}

variable "disk_throughput" {
  description = "Provisioned throughput of a gp3 root disk in MiB/s; null: the baseline."
  type        = number
  default     = null
}
