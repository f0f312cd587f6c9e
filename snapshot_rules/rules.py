"""Snapshot rules declared as data: ``every(n)``, ``on(types)``, ``interval(s)``, combined with
``|``.

A rule looks only at ``Progress``, which the snapshotter derives from durable state (the
stored event and the aggregate's last snapshot), so the "counters" survive restarts and
rebalances without being kept anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Progress:
    """What is known of one aggregate when one of its events has just been stored."""

    version: int
    event_type: str
    occurred_at: datetime
    snapshot_version: int = 0
    snapshot_taken_at: datetime | None = None

    @property
    def events_since_snapshot(self) -> int:
        return self.version - self.snapshot_version


class Rule:
    """Base of all rules; ``a | b`` snapshots when either does."""

    def should_snapshot(self, progress: Progress) -> bool:
        raise NotImplementedError

    def event_types(self) -> frozenset[str]:
        """The event types the rule names (checked against the domain at declaration)."""
        return frozenset()

    def __or__(self, other: Rule) -> Rule:
        return AnyOf((*_parts(self), *_parts(other)))


def _parts(rule: Rule) -> tuple[Rule, ...]:
    return rule.rules if isinstance(rule, AnyOf) else (rule,)


@dataclass(frozen=True, slots=True)
class Every(Rule):
    """Snapshot once ``n`` events have been stored since the last snapshot."""

    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"every(n) needs n >= 1, got {self.n}")

    def should_snapshot(self, progress: Progress) -> bool:
        return progress.events_since_snapshot >= self.n


@dataclass(frozen=True, slots=True)
class On(Rule):
    """Snapshot after any event of the given types (typically terminal ones)."""

    types: frozenset[str]

    def should_snapshot(self, progress: Progress) -> bool:
        return progress.events_since_snapshot > 0 and progress.event_type in self.types

    def event_types(self) -> frozenset[str]:
        return self.types


@dataclass(frozen=True, slots=True)
class Interval(Rule):
    """Keep the snapshot at most ``seconds`` behind the newest event.

    An aggregate with no snapshot yet gets one at its first event under this rule.
    """

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:  # also rejects NaN, which would never fire
            raise ValueError(f"interval(seconds) needs seconds > 0, got {self.seconds}")

    def should_snapshot(self, progress: Progress) -> bool:
        if progress.events_since_snapshot <= 0:
            return False
        if progress.snapshot_taken_at is None:
            return True
        elapsed = (progress.occurred_at - progress.snapshot_taken_at).total_seconds()
        return elapsed >= self.seconds


@dataclass(frozen=True, slots=True)
class AnyOf(Rule):
    """Snapshot when any of the rules does."""

    rules: tuple[Rule, ...]

    def should_snapshot(self, progress: Progress) -> bool:
        return any(rule.should_snapshot(progress) for rule in self.rules)

    def event_types(self) -> frozenset[str]:
        return frozenset().union(*(rule.event_types() for rule in self.rules))


@dataclass(frozen=True, slots=True)
class Never(Rule):
    """Never snapshot on events (queries still save snapshots of long tails)."""

    def should_snapshot(self, progress: Progress) -> bool:
        return False


def every(n: int) -> Rule:
    return Every(n)


def on(types: Iterable[str] | str) -> Rule:
    return On(frozenset([types] if isinstance(types, str) else types))


def interval(seconds: float) -> Rule:
    return Interval(seconds)


def never() -> Rule:
    return Never()
