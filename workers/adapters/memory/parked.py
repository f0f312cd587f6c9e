"""In-memory parked aggregates, as the MongoDB store keeps them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from topics.errors import NotFound, StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message, stored_time
from workers.ports import ParkedEntry, ParkedEvents, check_head


class MemoryParkedEvents(Switchable):
    """Parked entries by source; a queue is its key's entries in seq order."""

    def __init__(self) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("parked", what)))
        self._by_source: dict[str, ParkedEntry] = {}

    async def park(self, entries: Sequence[ParkedEntry]) -> None:
        if not entries:
            return
        await self.faults.enter("park", f"parking {len(entries)} events")
        for e in entries:
            self._by_source.setdefault(e.source, replace(e, parked_at=stored_time(e.parked_at)))

    async def sources(self, sources: Sequence[str]) -> set[str]:
        await self.faults.enter("sources", f"looking up {len(sources)} parked records")
        return {s for s in sources if s in self._by_source}

    async def heads(self, keys: Sequence[str] | None = None) -> dict[str, tuple[ParkedEntry, int]]:
        await self.faults.enter("heads", "reading parked aggregates")
        found: dict[str, tuple[ParkedEntry, int]] = {}
        for e in sorted(self._by_source.values(), key=lambda e: e.seq):
            if keys is not None and e.key not in keys:
                continue
            head, _ = found.get(e.key, (e, e.seq))
            found[e.key] = (head, e.seq)
        return found

    async def queue(self, key: str, *, limit: int) -> list[ParkedEntry]:
        await self.faults.enter("queue", f"reading the parked queue of {key}")
        return sorted((e for e in self._by_source.values() if e.key == key), key=lambda e: e.seq)[
            :limit
        ]

    async def resolve(self, key: str, seq: int, resolution: str, by: str) -> ParkedEntry:
        head = (await self.heads([key])).get(key)
        if head is None:
            raise NotFound(f"{key} is not parked: it has no queue (released already?).")
        check_head(head[0], seq)
        await self.faults.enter("resolve", f"resolving the head of {key}")
        entry = head[0]
        if entry.resolution is None:
            entry = replace(entry, resolution=resolution, by=by)
            self._by_source[entry.source] = entry
        return entry

    async def relabel(self, source: str, reason: str, detail: str) -> None:
        await self.faults.enter("relabel", f"relabelling parked entry {source}")
        entry = self._by_source.get(source)
        if entry is not None:
            self._by_source[source] = replace(entry, reason=reason, detail=detail)

    async def remove(self, sources: Sequence[str]) -> None:
        await self.faults.enter("remove", f"releasing {len(sources)} parked events")
        for s in sources:
            self._by_source.pop(s, None)


def _implements(parked: MemoryParkedEvents) -> ParkedEvents:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return parked
