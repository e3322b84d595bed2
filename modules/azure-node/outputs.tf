output "ids" {
  description = "VM resource ids, one per node."
  value       = azurerm_linux_virtual_machine.node[*].id
}

output "names" {
  description = "VM names, one per node."
  value       = azurerm_linux_virtual_machine.node[*].name
}

output "zone" {
  description = "Azure regions in this catalog have no zones: the region is the placement."
  value       = var.location
}

output "private_ips" {
  description = "Private IPv4 addresses, one per node."
  value       = azurerm_linux_virtual_machine.node[*].private_ip_address
}

output "public_ips" {
  description = "Public IPv4 addresses, one per node."
  value       = azurerm_public_ip.node[*].ip_address
}
