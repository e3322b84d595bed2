output "ids" {
  description = "TPU VM ids, one per node."
  value       = google_tpu_v2_vm.node[*].id
}

output "names" {
  description = "TPU VM names, one per node."
  value       = google_tpu_v2_vm.node[*].name
}

output "zone" {
  description = "Zone of the TPU VMs."
  value       = var.zone
}

output "private_ips" {
  description = "Internal IPv4 addresses of each TPU VM's first worker."
  value       = [for t in google_tpu_v2_vm.node : try(t.network_endpoints[0].ip_address, null)]
}

output "public_ips" {
  description = "External IPv4 addresses of each TPU VM's first worker."
  value       = [for t in google_tpu_v2_vm.node : try(t.network_endpoints[0].access_config[0].external_ip, null)]
}
