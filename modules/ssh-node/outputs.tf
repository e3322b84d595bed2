output "remote_dir" {
  description = "The task's directory on the host, relative to the login user's home."
  value       = local.remote_dir
}
