"""What a failure is: driver errors that escaped their adapter (a tool's own client), as ours
(one sentence naming the fix); and which errors are the work failing rather than its task
being stopped."""

from __future__ import annotations

import asyncio

from workers.adapters import kafka, mongo, redis


def ours(error: Exception) -> Exception:
    """``error`` as one of the project's errors when a driver raised it; else ``error`` itself."""
    for escaped in (kafka.escaped, mongo.escaped, redis.escaped):
        found = escaped(error)
        if found is not None:
            return found
    return error


def a_failure(e: BaseException) -> bool:
    """Whether ``e`` is the work failing (fatal: the process stops, the batch unacked), not
    this task being stopped.

    Every Exception is. A CancelledError is one only when nobody cancelled this task: a library
    may raise one of its own (aiokafka's ``Fetcher.close`` re-raised a fetch it had cancelled
    itself), and taken for Faust's cancel it ended the agent without a word while the process
    stayed up and its partitions stalled.
    """
    if isinstance(e, Exception):
        return True
    if isinstance(e, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is not None and task.cancelling() == 0
    return False  # KeyboardInterrupt, SystemExit: the process is ending anyway
