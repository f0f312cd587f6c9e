"""How a durable bus retries a failing handler (``RetryPolicy``) and pulls its events from the
server (``PullPolicy``)."""

from __future__ import annotations

from dataclasses import dataclass

from topics.errors import ConfigError
from workers.retries import Backoff


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a durable bus retries a failing handler before it dead-letters the event.

    ``max_attempts`` counts handler runs, the first one included; between runs the
    bus waits ``first_backoff_ms`` doubling up to ``max_backoff_ms``. stamina runs them
    (``runs``); a dead letter the server refused is written again on the same waits.
    """

    max_attempts: int = 5
    first_backoff_ms: int = 200
    max_backoff_ms: int = 5_000

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 < self.first_backoff_ms <= self.max_backoff_ms:
            raise ConfigError(
                f"backoff must satisfy 0 < first_backoff_ms ({self.first_backoff_ms})"
                f" <= max_backoff_ms ({self.max_backoff_ms})"
            )

    def backoff_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 30)
        return min(self.first_backoff_ms * (1 << exponent), self.max_backoff_ms) / 1000

    def runs(self, *, done: int = 0) -> Backoff:
        """The handler runs left after ``done`` (at least one), each wait as if counted from
        the first run."""
        left = max(self.max_attempts - done, 1)
        return Backoff(self.backoff_s(done + 1), self.max_backoff_ms / 1000, attempts=left)

    def writes(self) -> Backoff:
        """A write that must not be dropped (a dead letter): as many as it takes."""
        return Backoff(self.backoff_s(1), self.max_backoff_ms / 1000)

    def reads(self) -> Backoff:
        """A subscription's reads, which go on whatever fails: as many as it takes."""
        return Backoff(self.backoff_s(1), self.max_backoff_ms / 1000)


@dataclass(frozen=True, slots=True)
class PullPolicy:
    """How each subscription of a durable bus (Redis, NATS) pulls its events from the server.

    A pull takes up to ``batch_size`` events and waits up to ``wait_ms`` for the first of
    them (Redis: ``XREADGROUP``'s ``BLOCK``; NATS: the fetch's timeout); an event its
    consumer took but did not acknowledge within ``redeliver_after_ms`` is delivered again
    (Redis: claimed with ``XAUTOCLAIM`` once idle that long; NATS: the consumer's
    ``ack_wait``). So ``redeliver_after_ms`` must exceed the time one batch takes to handle
    (on Redis, retries included), or another consumer of the same durable name runs it too.
    """

    batch_size: int = 10
    wait_ms: int = 1_000
    redeliver_after_ms: int = 60_000

    def __post_init__(self) -> None:
        require_positive(
            "PullPolicy",
            batch_size=self.batch_size,
            wait_ms=self.wait_ms,
            redeliver_after_ms=self.redeliver_after_ms,
        )

    @property
    def wait_s(self) -> float:
        return self.wait_ms / 1000

    @property
    def redeliver_after_s(self) -> float:
        return self.redeliver_after_ms / 1000


def require_positive(owner: str, **values: int) -> None:
    """Raise ConfigError naming the first of ``values`` below 1 (counts and durations)."""
    for name, value in values.items():
        if value < 1:
            raise ConfigError(f"{owner} {name} must be >= 1, got {value}")
