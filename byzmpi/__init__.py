"""byzmpi: Byzantine-robust distributed training over MPI."""

__version__ = "0.1.0"
