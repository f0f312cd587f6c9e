"""How the client waits between tries: exponential backoff with full jitter, bounded in
tries and in time, never shorter than what the fleet asked for (``Retry-After``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from workers.client._base import ClientError

__all__ = ["Backoff", "Retrying"]


@dataclass(frozen=True, slots=True)
class Retrying:
    """Told to ``on_retry`` before each wait: the try that failed (1 for the first), why, and
    how long the client waits before the next."""

    attempt: int
    error: ClientError
    delay_s: float


@dataclass(frozen=True, slots=True)
class Backoff:
    """At most ``attempts`` tries within ``budget_s``; before try n+1 a random wait in
    [0, min(max_s, first_s * 2**(n-1))] ("full jitter": many clients that failed together do
    not come back together), or the fleet's ``Retry-After`` when that is longer."""

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
