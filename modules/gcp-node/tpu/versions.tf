terraform {
  required_version = ">= 1.5.0"

  # TPU VMs (google_tpu_v2_vm) exist only in the google-beta provider.
  required_providers {
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50"
    }
  }
}
