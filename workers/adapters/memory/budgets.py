"""Write budgets in memory: the Redis script's contract, on the adapter's ``clock`` (seconds).

``take_now`` is the same take without a suspension point, for the in-memory marker's
claim-and-mark (one call there, as on Redis). A bucket is forgotten once it would be full.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from topics.errors import MarkerUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.ports import Bucket, BudgetDraw, WriteBudgets, full_after_ms, take_token


class MemoryWriteBudgets(Switchable):
    """One bucket per principal, with the moment it would be full again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.faults = Faults(lambda what: MarkerUnavailable(down_message("Redis", what)))
        self.clock = clock
        self._buckets: dict[str, tuple[Bucket, int]] = {}

    def take_now(self, draw: BudgetDraw) -> int:
        now_ms = int(self.clock() * 1000)
        held = self._buckets.get(draw.principal)
        bucket = held[0] if held is not None and held[1] > now_ms else None
        refilled, wait_ms = take_token(bucket, draw.budget, now_ms, draw.writes)
        if wait_ms:
            return wait_ms  # nothing taken, nothing stored (as the script)
        forget_at = refilled.at_ms + full_after_ms(refilled, draw.budget) + 1000
        self._buckets[draw.principal] = (refilled, forget_at)
        return 0

    async def take(self, draw: BudgetDraw) -> int:
        await self.faults.enter("take", f"taking a write of {draw.principal}")
        return self.take_now(draw)

    async def ping(self) -> bool:
        try:
            await self.faults.enter("ping", "pinging")
        except MarkerUnavailable:
            return False
        return True

    def buckets_held(self) -> int:
        """Buckets held now (the ones not yet forgotten)."""
        now_ms = int(self.clock() * 1000)
        return sum(1 for _, forget_at in self._buckets.values() if forget_at > now_ms)


def _implements(budgets: MemoryWriteBudgets) -> WriteBudgets:
    """Never called: mypy checks here that the class keeps its port's signature."""
    return budgets
