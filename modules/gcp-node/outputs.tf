output "ids" {
  description = "Instance ids, one per node."
  value       = google_compute_instance.node[*].instance_id
}

output "names" {
  description = "Instance names, one per node."
  value       = google_compute_instance.node[*].name
}

output "zone" {
  description = "Zone of the VMs."
  value       = var.zone
}

output "private_ips" {
  description = "Internal IPv4 addresses, one per node."
  value       = [for i in google_compute_instance.node : i.network_interface[0].network_ip]
}

output "public_ips" {
  description = "External IPv4 addresses, one per node."
  value       = [for i in google_compute_instance.node : i.network_interface[0].access_config[0].nat_ip]
}
