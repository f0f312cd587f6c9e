"""The client's retry policies, run by stamina: how many tries within how long, and how long
to wait before each (exponential with full jitter, never shorter than ``Retry-After``)."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import stamina

from workers.client._base import ApiError, ClientError
from workers.client._catalogue import NotYetStoredError

__all__ = ["RECONNECT", "Backoff", "Retrying", "Tries"]


@dataclass(frozen=True, slots=True)
class Retrying:
    """Told to ``on_retry`` before each wait: the try that failed (1 for the first), why, and
    how long the client waits before the next."""

    attempt: int
    error: ClientError
    delay_s: float


class Tries(Protocol):
    """``stamina.retry_context``: ``for attempt in tries: with attempt: ...`` (or ``async for``)."""

    def __iter__(self) -> Iterator[stamina.Attempt]: ...

    def __aiter__(self) -> AsyncIterator[stamina.Attempt]: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """At most ``attempts`` tries within ``budget_s``; before try n+1 a random wait in
    [0, min(max_s, first_s * 2**(n-1))] ("full jitter": many clients that failed together do
    not come back together), or the fleet's ``Retry-After`` when that is longer. A wait that
    would end past the budget is not begun: the error is raised instead.

    Only what a retry can help is retried: an error whose class is ``retriable`` (every 503,
    429, ``command_in_progress``, ``conflict``, no answer at all), never ``not_yet_stored``
    (the caller's ``wait_ms`` was the bound it chose). stamina runs the tries, so its switches
    apply too: ``stamina.set_testing(True)`` (no waits) and its retry hooks (logs, metrics).
    """

    attempts: int = 8
    first_s: float = 0.1
    max_s: float = 5.0
    budget_s: float = 30.0
    on_retry: Callable[[Retrying], None] | None = None
    """Called before each wait (a log line, a counter); it must not raise."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Backoff.attempts is {self.attempts}; it must be at least 1.")
        if not 0 < self.first_s <= self.max_s:
            raise ValueError(
                f"Backoff needs 0 < first_s <= max_s; got first_s={self.first_s}, "
                f"max_s={self.max_s}."
            )
        if self.budget_s <= 0:
            raise ValueError(f"Backoff.budget_s is {self.budget_s}; it must be positive.")

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """The wait after failed try number ``attempt`` (1-based)."""
        ceiling = min(self.max_s, self.first_s * 2 ** min(attempt - 1, 62))
        jittered = random.uniform(0, ceiling)
        if retry_after_s is not None and retry_after_s > jittered:
            return retry_after_s + random.uniform(0, self.first_s)
        return jittered

    def tries(self, *, fresh: Callable[[], bool] | None = None) -> Tries:
        """The tries of one call, from now. ``fresh``: for a subscription, true when it made
        progress since its last failure: its bounds then start again (per outage, not for
        the subscription's whole life)."""
        judge = _Judge(self, fresh)
        if fresh is not None:  # the judge alone bounds each outage
            return stamina.retry_context(on=judge, attempts=None, timeout=None)
        return stamina.retry_context(on=judge, attempts=self.attempts, timeout=self.budget_s)


RECONNECT = Backoff(attempts=10, first_s=0.2, max_s=10.0, budget_s=120.0)
"""A subscription's reconnects in one outage: 10 tries within two minutes."""


class _Judge:
    """stamina's backoff hook for one run of tries: False (raise it) or the wait before the next."""

    def __init__(self, policy: Backoff, fresh: Callable[[], bool] | None) -> None:
        self.policy, self.fresh = policy, fresh
        self.failed, self.deadline = 0, time.monotonic() + policy.budget_s

    def __call__(self, error: Exception) -> bool | float:
        if self.fresh is not None and self.fresh():
            self.failed, self.deadline = 0, time.monotonic() + self.policy.budget_s
        self.failed += 1
        if not isinstance(error, ClientError) or not error.retriable:
            return False
        if isinstance(error, NotYetStoredError) or self.failed >= self.policy.attempts:
            return False
        retry_after = error.retry_after_s if isinstance(error, ApiError) else None
        delay_s = self.policy.delay_s(self.failed, retry_after)
        if time.monotonic() + delay_s > self.deadline:
            return False
        if self.policy.on_retry is not None:
            self.policy.on_retry(Retrying(self.failed, error, delay_s))
        return delay_s
