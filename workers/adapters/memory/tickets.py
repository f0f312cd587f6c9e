"""Ticket records in memory: the Redis adapter's contract, expiring on the adapter's ``clock``."""

from __future__ import annotations

import time
from collections.abc import Callable

from topics.errors import MarkerUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message


class MemoryTicketStore(Switchable):
    """Records and spent marks by digest, each with its expiry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.faults = Faults(lambda what: MarkerUnavailable(down_message("Redis", what)))
        self.clock = clock
        self._records: dict[str, tuple[bytes, float]] = {}
        self._spent: dict[str, float] = {}

    async def put(self, digest: str, record: bytes, *, keep_s: int) -> None:
        await self.faults.enter("put", "keeping a ticket")
        self._records[digest] = (record, self.clock() + keep_s)

    async def find(self, digest: str) -> bytes | None:
        await self.faults.enter("find", "reading a ticket")
        found = self._records.get(digest)
        if found is None or found[1] <= self.clock():
            self._records.pop(digest, None)
            return None
        return found[0]

    async def spend(self, digest: str, *, keep_s: int) -> bool:
        await self.faults.enter("spend", "spending a ticket")
        until = self._spent.get(digest)
        now = self.clock()
        if until is not None and until > now:
            return False
        self._spent[digest] = now + keep_s
        return True
