"""Driver errors that escaped their adapter (a tool's own client), as ours: one sentence naming the fix."""

from __future__ import annotations

from workers.adapters import kafka, mongo, redis


def ours(error: Exception) -> Exception:
    """``error`` as one of the project's errors when a driver raised it; else ``error`` itself."""
    for escaped in (kafka.escaped, mongo.escaped, redis.escaped):
        found = escaped(error)
        if found is not None:
            return found
    return error
