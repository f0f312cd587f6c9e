"""The in-memory snapshot store: one snapshot per aggregate, guarded so it never moves backwards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from topics.errors import StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, as_stored, down_message, stored_time
from workers.ports import AggregateRef, Snapshot, SnapshotStore


class MemorySnapshotStore(Switchable):
    """Snapshots by aggregate; ``saved`` lists every snapshot the guard let through, in order."""

    def __init__(self) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("snapshot store", what)))
        self._by_aggregate: dict[AggregateRef, Snapshot] = {}
        self.saved: list[Snapshot] = []

    async def load(self, aggregate: AggregateRef) -> Snapshot | None:
        await self.faults.enter("load", f"loading the snapshot of {aggregate[0]} {aggregate[1]}")
        found = self._by_aggregate.get(aggregate)
        return None if found is None else _copy(found)

    async def load_many(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Snapshot]:
        if not aggregates:
            return {}
        refs = set(aggregates)
        await self.faults.enter("load_many", f"loading {len(refs)} snapshots")
        return {ref: _copy(self._by_aggregate[ref]) for ref in refs if ref in self._by_aggregate}

    async def save(self, snapshot: Snapshot) -> bool:
        aggregate = (snapshot.aggregate_type, snapshot.aggregate_id)
        await self.faults.enter("save", f"saving the snapshot of {aggregate[0]} {aggregate[1]}")
        current = self._by_aggregate.get(aggregate)
        if current is not None and current.version >= snapshot.version:
            return False  # a snapshot of the same or a newer version is already there
        stored = replace(
            snapshot, state=as_stored(snapshot.state), taken_at=stored_time(snapshot.taken_at)
        )
        self._by_aggregate[aggregate] = stored
        self.saved.append(stored)
        return True


def _copy(snapshot: Snapshot) -> Snapshot:
    return replace(snapshot, state=as_stored(snapshot.state))


def _implements(store: MemorySnapshotStore) -> SnapshotStore:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return store
