"""Pause-and-retry for consumer roles: a dependency that is down delays, never skips, an event."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import stamina

from topics.errors import Unavailable
from workers.metrics import Metrics
from workers.retries import Backoff

T = TypeVar("T")
log = logging.getLogger(__name__)

DEPENDENCY_PAUSES = Backoff(first_s=0.05, max_s=5.0)
"""A role's pauses while a dependency is down: as many as it takes (the event waits, it is never
skipped), 0.05 s doubling up to 5 s."""


async def until_done(
    work: Callable[[], Awaitable[T]],
    *,
    role: str,
    metrics: Metrics,
    policy: Backoff = DEPENDENCY_PAUSES,
) -> T:
    """Run ``work`` until it succeeds, pausing on ``policy`` while a dependency is unavailable.

    Only retriable errors are retried; anything else propagates to the caller, which
    decides between dead-lettering and stopping the process. Each pause is counted
    (``eventfleet_dependency_retries_total``) and logged.
    """

    def paused(e: Exception, attempt: stamina.Attempt) -> None:
        service = e.service if isinstance(e, Unavailable) else "unknown"
        metrics.dependency_retries.labels(role, service).inc()
        log.warning("%s paused %.2fs: %s", role, attempt.next_wait, e)

    return await policy.call(lambda _: work(), Unavailable, retrying=paused)
