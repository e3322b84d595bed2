output "ids" {
  description = "Instance ids, one per node."
  value       = aws_instance.node[*].id
}

output "names" {
  description = "Name tags, one per node."
  value       = [for i in aws_instance.node : i.tags["Name"]]
}

output "zone" {
  description = "Availability zone name the subnet placed the machines in."
  value       = try(aws_instance.node[0].availability_zone, null)
}

output "private_ips" {
  description = "Private IPv4 addresses, one per node."
  value       = aws_instance.node[*].private_ip
}

output "public_ips" {
  description = "Public IPv4 addresses, one per node."
  value       = aws_instance.node[*].public_ip
}
