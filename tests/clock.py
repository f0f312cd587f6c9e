"""Time a test moves: deadlines pass when the test says so, not when the machine is slow."""

from __future__ import annotations


class Clock:
    """A monotonic clock for the roles (``clock=``): ``now`` moves only when a test sets it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
