"""Developer tools: the embedded stack, ``eventfleet dev``, the self-checking demo and the
benchmarks.

Nothing in the production import graph imports this package; only the CLI and tests do.
Public API: ``embedded`` (the real services for development and tests).
"""

__all__ = ["embedded"]
