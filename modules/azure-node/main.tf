locals {
  # Azure requires an SSH key or a password on Linux VMs ("disable_password_authentication"
  # needs an admin_ssh_key; a password would sit in Terraform state), but skyplan never logs in:
  # the executor runs from custom_data. Unless the user brings a key, install this one, which
  # has no private key at all: its 3072-bit modulus is SHA-512 output of a public seed, made odd
  # (tests/test_azure_key.py re-derives it), a number nobody can factor. Unlike a key whose
  # private half was "deleted", anyone can check that no credential exists.
  unusable_ssh_key = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCV7R5S2Mo9eXEekmza8wkV55nlnp9Eh3RD7eCEPRTHritt2ddWfaS67q41rZ7hVMm5NNFUSPhuD0ICuixuESW7V+aSYoIr4lo2WcM0Pkfb9s2QUagp2QvhC3Y73FKnHlcZhwIg8LRYFkEciXupW8VlKKvlwXrNhmSs9IiFlxZ/r4HDaJY1KTxq/ia1EflvpwXzK12tw1LmT55v8yd1LPPaSCaP2/aGikVO/VrrfxMqzK0tyiIsxWbR3qNbC3GvYBVD0toZPxVZgEcZpxZ/8MMIOQQ5V8xpUNB5tuMv2OhbIpc4Ksrf6K5xSuNEh41NTvR//OlvQQzBWbD9vmlsUyhkSzqVAuRqqGmj2M7dodXTZKF4BsdHefls/55kzXF0jQDUADVumDuMPjtjkGXngVWo2VCiMT+rS0X9PkZ45X3rueGhekGb0SH7hZWs+mpKP14s+HIoh34UkW3sQeCYp4ItiBbbB43cd9E4medS253DqYgLrbfV/zrQcGxBCmVy9I0= skyplan-no-private-key"
  admin_username   = "skyplan"

  # cloud-init/<task>.yaml carries two placeholder words for values known only when Terraform
  # runs (skyplan/targets/cloud.py): the run's storage URI, JSON-quoted so it stays one YAML
  # scalar, and each machine's rank (substituted per node below).
  user_data = replace(var.user_data, "SKYPLAN_STORAGE_TOKEN", jsonencode(var.storage))
}

# A Standard public address per VM gives explicit egress: VNets created with the network API
# released after 31 March 2026 have private subnets, without default outbound access ("Default
# outbound access in Azure", Azure Virtual Network docs).
# The NSG still blocks all inbound traffic unless the task asked for ports.
resource "azurerm_public_ip" "node" {
  count = var.num_nodes

  name                = "${var.name}-${count.index}-ip"
  location            = var.location
  resource_group_name = var.resource_group_name
  allocation_method   = "Static"
  sku                 = "Standard"
  tags                = var.tags
}

resource "azurerm_network_interface" "node" {
  count = var.num_nodes

  name                = "${var.name}-${count.index}-nic"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  ip_configuration {
    name                          = "primary"
    subnet_id                     = var.subnet_id
    private_ip_address_allocation = "Dynamic"
    public_ip_address_id          = azurerm_public_ip.node[count.index].id
  }
}

# When the task ends, or at its ceiling (a timer armed at boot, skyplan/endstep.py), the VM
# deallocates itself through its managed identity and powers off: a VM stopped from inside stays
# allocated and keeps billing for compute ("States and billing status of Azure VMs"). Spot VMs are deleted on eviction; max_bid_price = -1 caps the
# price at the on-demand price, so the VM is never evicted for price ("Use Azure Spot Virtual
# Machines", Azure docs; azurerm_linux_virtual_machine priority / eviction_policy / max_bid_price).
resource "azurerm_linux_virtual_machine" "node" {
  count = var.num_nodes

  name                  = "${var.name}-${count.index}"
  location              = var.location
  resource_group_name   = var.resource_group_name
  size                  = var.size
  network_interface_ids = [azurerm_network_interface.node[count.index].id]
  admin_username        = local.admin_username
  custom_data           = base64encode(replace(local.user_data, "SKYPLAN_NODE_RANK_TOKEN", "'${count.index}'"))
  source_image_id       = var.source_image_id
  priority              = var.spot ? "Spot" : "Regular"
  eviction_policy       = var.spot ? "Delete" : null
  max_bid_price         = var.spot ? -1 : null
  tags                  = var.tags

  # skyplan runs everything from custom_data; no VM extension may be installed on its VMs.
  allow_extension_operations = false

  admin_ssh_key {
    username   = local.admin_username
    public_key = coalesce(var.admin_ssh_public_key, local.unusable_ssh_key)
  }

  os_disk {
    caching              = "ReadWrite"
    storage_account_type = var.disk_type
    disk_size_gb         = var.disk_gb
  }

  dynamic "source_image_reference" {
    for_each = var.source_image_id == null ? [var.image] : []
    content {
      publisher = source_image_reference.value.publisher
      offer     = source_image_reference.value.offer
      sku       = source_image_reference.value.sku
      version   = source_image_reference.value.version
    }
  }

  # The staging identity when there is one (IMDS then hands out its token without a client id),
  # else a system-assigned one, used only to deallocate the VM itself.
  identity {
    type         = var.identity_id == null ? "SystemAssigned" : "UserAssigned"
    identity_ids = var.identity_id == null ? null : [var.identity_id]
  }
}

# The identity may deallocate this VM ("Virtual Machine Contributor" holds
# Microsoft.Compute/virtualMachines/deallocate/action), scoped to the VM itself.
resource "azurerm_role_assignment" "self_deallocate" {
  count = var.num_nodes

  scope                = azurerm_linux_virtual_machine.node[count.index].id
  role_definition_name = "Virtual Machine Contributor"
  principal_id         = var.identity_id == null ? azurerm_linux_virtual_machine.node[count.index].identity[0].principal_id : var.identity_principal_id
  principal_type       = "ServicePrincipal"
}
