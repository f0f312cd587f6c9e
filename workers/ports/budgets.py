"""Write budgets: per-principal token buckets shared by every commands process, and their values.

A ``Budget`` is a token bucket: ``rate_per_s`` writes a second on average, at most ``burst`` at
once. Each write draws one token (``BudgetDraw``) from its principal's bucket, an append across
aggregates one per event, all at once or none; ``take_token`` is the arithmetic every backend
runs (the Redis script the same, on Redis's clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from topics.frozen import slot_init


@dataclass(frozen=True, slots=True)
class Budget:
    """A token bucket: ``rate_per_s`` writes a second on average, at most ``burst`` at once."""

    rate_per_s: int
    burst: int

    def __post_init__(self) -> None:
        if self.rate_per_s < 1 or self.burst < 1:
            raise ValueError(
                f"a budget needs a rate and a burst of at least 1, not {self.rate_per_s}/"
                f"{self.burst} (a rate of 0 means no budget at all)"
            )

    @property
    def spec(self) -> str:
        """``<rate>/<burst>``: how the scripts read it."""
        return f"{self.rate_per_s}/{self.burst}"


@slot_init
@dataclass(frozen=True, slots=True)
class BudgetDraw:
    """``writes`` drawn at once from ``principal``'s bucket, which holds ``budget``."""

    principal: str
    budget: Budget
    writes: int = 1


@dataclass(slots=True)
class Bucket:
    """A bucket's state: ``tokens`` left at ``at_ms`` (a missing bucket is a full one)."""

    tokens: float
    at_ms: int


def take_token(
    bucket: Bucket | None, budget: Budget, now_ms: int, writes: int = 1
) -> tuple[Bucket, int]:
    """Refill ``bucket`` to ``now_ms`` and take ``writes`` tokens: (the new state, 0), or (the
    refilled state, milliseconds until they are there) with nothing taken. A clock that went
    back counts as no time passed. More writes than the burst are never there: the caller
    refuses such a draw first."""
    rate, burst = budget.rate_per_s, budget.burst
    if bucket is None:
        tokens, at = float(burst), now_ms
    else:
        at = max(now_ms, bucket.at_ms)
        tokens = min(float(burst), bucket.tokens + (at - bucket.at_ms) * rate / 1000)
    if tokens < writes:
        return Bucket(tokens, at), max(1, math.ceil((writes - tokens) * 1000 / rate))
    return Bucket(round(tokens - writes, 6), at), 0


def full_after_ms(bucket: Bucket, budget: Budget) -> int:
    """Milliseconds until ``bucket`` is full again (then it may be forgotten: a missing bucket
    is a full one)."""
    return math.ceil((budget.burst - bucket.tokens) * 1000 / budget.rate_per_s)


def budget_table(raw: str) -> dict[str, Budget | None]:
    """``name=rate[/burst],…`` as budgets by name (a rate of 0: no budget; the burst defaults to
    twice the rate). ValueError with a sentence naming the entry and the form."""
    table: dict[str, Budget | None] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        name, sep, numbers = entry.rpartition("=")
        rate, slash, burst = numbers.strip().partition("/")
        name = name.strip()
        if not (sep and name and rate.isdigit() and (not slash or burst.isdigit())):
            raise ValueError(
                f"{entry[:80]!r} is not name=rate or name=rate/burst (writes a second, writes "
                "at once), e.g. alice=50/100,importer=0 (0: no budget)"
            )
        if name in table:
            raise ValueError(f"{name[:80]!r} is named twice")
        per_s = int(rate)
        at_once = int(burst) if slash else 2 * per_s
        if per_s and not at_once:
            raise ValueError(f"{entry[:80]!r} has a burst of 0: a burst is at least 1")
        table[name] = Budget(per_s, at_once) if per_s else None
    return table


class WriteBudgets(Protocol):
    """Per-principal token buckets, shared by every process of a fleet.

    ``take`` refills the principal's bucket by the time passed on the backend's own clock (so
    every process agrees), then takes the draw's writes, all or none, atomically: of concurrent
    takes from any processes, no more pass than the bucket holds. It answers 0 when they were
    taken, else the milliseconds until they are there (nothing taken). A bucket left alone is
    forgotten once it would be full again. Raises MarkerUnavailable when the backend does not
    answer.
    """

    async def take(self, draw: BudgetDraw) -> int: ...

    async def ping(self) -> bool:
        """Whether the backend answers (False instead of raising)."""
        ...
