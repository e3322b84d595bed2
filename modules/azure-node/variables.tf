variable "name" {
  description = "Base name of the VMs (already a safe Azure name); node i is named <name>-<i>."
  type        = string
}

variable "tags" {
  description = "Tags put on every resource (skyplan-plan, skyplan-task, ...)."
  type        = map(string)
}

variable "location" {
  description = "Azure region, e.g. eastus."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group holding the run's resources in this region."
  type        = string
}

variable "subnet_id" {
  description = "Subnet of the VMs' network interfaces (its NSG allows egress only, unless ports were asked)."
  type        = string
}

variable "size" {
  description = "VM size, e.g. Standard_NC24ads_A100_v4."
  type        = string
}

variable "image" {
  description = "Marketplace image; ignored when source_image_id is set."
  type = object({
    publisher = string
    offer     = string
    sku       = string
    version   = string
  })
  default = null
}

variable "source_image_id" {
  description = "A custom or gallery image id (the task's image_id); null to use image."
  type        = string
  default     = null
}

variable "spot" {
  description = "Run as Spot VMs that are deleted on eviction."
  type        = bool
  default     = false
}

variable "disk_gb" {
  description = "OS disk size in GB."
  type        = number
  default     = 256
}

variable "user_data" {
  description = "The task's #cloud-config text (custom_data, at most 64 KiB after base64, checked at render time)."
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

variable "identity_id" {
  description = "User-assigned identity granting access to the run's storage; null for none."
  type        = string
  default     = null
}

variable "identity_principal_id" {
  description = "Principal id of identity_id (it is granted the deallocation of each VM); null with identity_id null."
  type        = string
  default     = null
}

variable "admin_ssh_public_key" {
  description = "SSH public key for the admin user; null installs a public key that has no private key (its modulus is a hash nobody can factor)."
  type        = string
  default     = null
}

variable "disk_type" {
  description = "OS disk storage account type (resources.disk_tier: Standard_LRS or Premium_LRS)."
  type        = string
  default     = "StandardSSD_LRS"
}
