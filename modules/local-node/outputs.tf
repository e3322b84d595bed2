output "work_dirs" {
  description = "Work directory of each node (logs, PID file)."
  value       = terraform_data.node[*].input.work_dir
}
