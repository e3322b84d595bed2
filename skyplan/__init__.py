"""skyplan: place batch job DAGs across clouds, compiled to reviewable Terraform."""

__version__ = "0.1.0"
