"""Ticket records in memory: the Redis adapter's contract, expiring on the adapter's ``clock``."""

from __future__ import annotations

import time
from collections.abc import Callable

from topics.errors import MarkerUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.ports import TicketLimits, TicketStore


class MemoryTicketStore(Switchable):
    """Records and spent marks by digest, each with its expiry; the digests each principal and
    the fleet hold, with when each leaves."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, limits: TicketLimits | None = None
    ) -> None:
        self.faults = Faults(lambda what: MarkerUnavailable(down_message("Redis", what)))
        self.clock = clock
        self.limits = limits or TicketLimits()
        self._records: dict[str, tuple[bytes, float]] = {}
        self._spent: dict[str, float] = {}
        self._held: dict[str | None, dict[str, float]] = {}
        """Digest -> when it leaves, by principal; None: the fleet's."""

    async def put(
        self, digest: str, record: bytes, *, keep_s: int, principal: str | None = None
    ) -> None:
        await self.faults.enter("put", "keeping a ticket")
        now = self.clock()
        checks: list[tuple[str | None, int, str]] = [(None, self.limits.max_held, "fleet")]
        if principal is not None:  # its own share first, then the fleet's whole
            checks.insert(0, (principal, self.limits.per_principal, "principal"))
        for holder, most, limit in checks:
            held = self._trimmed(holder, now)
            if len(held) >= most:
                raise self.limits.refusal(limit, int((min(held.values()) - now) * 1000))
        self._records[digest] = (record, now + keep_s)
        for holder in {principal, None}:
            self._held.setdefault(holder, {})[digest] = now + keep_s

    async def find(self, digest: str) -> bytes | None:
        await self.faults.enter("find", "reading a ticket")
        found = self._records.get(digest)
        if found is None or found[1] <= self.clock():
            self._records.pop(digest, None)
            return None
        return found[0]

    async def spend(self, digest: str, *, keep_s: int) -> bool:
        await self.faults.enter("spend", "spending a ticket")
        now = self.clock()
        record = self._records.get(digest)
        if record is None or record[1] <= now:
            return False  # no record: nothing to spend
        until = self._spent.get(digest)
        if until is not None and until > now:
            return False
        self._spent[digest] = now + keep_s
        return True

    def tickets_held(self, principal: str | None = None) -> int:
        """Records counted now against ``principal`` (None: the fleet's whole)."""
        return len(self._trimmed(principal, self.clock()))

    def _trimmed(self, holder: str | None, now: float) -> dict[str, float]:
        held = self._held.get(holder, {})
        for digest in [d for d, leaves in held.items() if leaves <= now]:
            del held[digest]
        return held


def _implements(store: MemoryTicketStore) -> TicketStore:
    """Never called: mypy checks here that the class keeps its port's signature."""
    return store
