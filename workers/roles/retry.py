"""Pause-and-retry for consumer roles: a dependency that is down delays, never skips, an event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from topics.errors import Unavailable
from workers.metrics import Metrics

T = TypeVar("T")
log = logging.getLogger(__name__)


async def until_done(
    work: Callable[[], Awaitable[T]],
    *,
    role: str,
    metrics: Metrics,
    first_delay_s: float = 0.05,
    max_delay_s: float = 5.0,
) -> T:
    """Run ``work`` until it succeeds, backing off while a dependency is unavailable.

    Only retriable errors are retried; anything else propagates to the caller, which
    decides between dead-lettering and stopping the process.
    """
    delay = first_delay_s
    while True:
        try:
            return await work()
        except Unavailable as e:
            metrics.dependency_retries.labels(role, e.service).inc()
            log.warning("%s paused %.2fs: %s", role, delay, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
