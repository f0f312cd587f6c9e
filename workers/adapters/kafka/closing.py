"""Closing an aiokafka client: bounded, quiet, and never mistaken for a cancel of the caller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


async def close_quietly(
    close: Callable[[], Awaitable[object]], *, timeout_s: float, what: str
) -> None:
    """Await ``close()`` (a client's ``stop`` or ``close``) for at most ``timeout_s``; an error
    closing is logged, never raised.

    aiokafka's consumer awaits the tasks it cancels on stop (the fetches in flight, a coordinator
    task that never ran): after a broker that stopped answering, or at once after a start, one
    re-raises CancelledError out of ``stop()``. Raised on, it would end the caller as if it had
    been cancelled (the forwarder's agent crashed that way when Kafka froze during a read-back).
    Only a cancel of the calling task is the caller's, and goes on.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await close()
    except (TimeoutError, KafkaError, OSError) as e:
        log.debug("%s: closing a Kafka client: %r", what, e)
    except asyncio.CancelledError as e:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("%s: closing a Kafka client, a task it cancelled: %r", what, e)
