"""Developer tools: the embedded stack, ``eventfleet dev``, the self-checking demo and the benchmarks.

Nothing in the production import graph imports this package; only the CLI and tests do.
"""
