"""The workload of ``eventfleet dev --demo`` over the example domains, and its verification."""

__all__ = ["client", "run", "verify"]
