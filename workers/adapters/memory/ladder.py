"""Snapshot ladders in memory: rungs by aggregate and version (tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from topics.errors import StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, as_stored, down_message, stored_time
from workers.ports import AggregateRef, Snapshot


class MemorySnapshotLadder(Switchable):
    def __init__(self) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("snapshot ladder", what)))
        self._rungs: dict[AggregateRef, dict[int, tuple[Snapshot, datetime]]] = {}

    async def add(self, rung: Snapshot, *, last_at: datetime) -> None:
        ref = (rung.aggregate_type, rung.aggregate_id)
        await self.faults.enter("add", f"adding a rung of {ref[0]} {ref[1]}")
        kept = replace(rung, state=as_stored(rung.state), taken_at=stored_time(rung.taken_at))
        self._rungs.setdefault(ref, {}).setdefault(rung.version, (kept, stored_time(last_at)))

    async def below(
        self, aggregate: AggregateRef, *, version: int | None = None, as_of: datetime | None = None
    ) -> Snapshot | None:
        await self.faults.enter("below", f"reading the ladder of {aggregate[0]} {aggregate[1]}")
        until = None if as_of is None else stored_time(as_of)
        fitting = [
            rung
            for v, (rung, last_at) in self._rungs.get(aggregate, {}).items()
            if (version is None or v <= version) and (until is None or last_at <= until)
        ]
        if not fitting:
            return None
        best = max(fitting, key=lambda r: r.version)
        return replace(best, state=as_stored(best.state))

    async def versions(self, aggregate: AggregateRef) -> list[int]:
        await self.faults.enter("versions", f"reading the ladder of {aggregate[0]} {aggregate[1]}")
        return sorted(self._rungs.get(aggregate, {}))

    async def remove(self, aggregate: AggregateRef, versions: Sequence[int]) -> None:
        await self.faults.enter("remove", f"thinning the ladder of {aggregate[0]} {aggregate[1]}")
        rungs = self._rungs.get(aggregate, {})
        for version in versions:
            rungs.pop(version, None)
