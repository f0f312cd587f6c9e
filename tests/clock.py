"""Time a test moves: deadlines pass when the test says so, not when the machine is slow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """A monotonic clock for the roles (``clock=``): ``now`` moves only when a test sets it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class WallClock:
    """A wall clock (``utc_now=``): it starts at the machine's time when made, as the events a
    test stores are stamped then, and moves only when the test moves ``at``."""

    def __init__(self) -> None:
        self.start = self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def after(self, seconds: float) -> None:
        """The clock ``seconds`` past its start."""
        self.at = self.start + timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        """The clock ``seconds`` later than it reads now."""
        self.at += timedelta(seconds=seconds)
