"""The in-memory event store: the MongoDB store's contract (unique id and version, ordered appends).

Events are kept in their stored form (``workers.adapters.records``: the document the MongoDB
store writes, copied as BSON would) and read back through the same mapping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from topics.envelope import Event
from topics.errors import StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, as_stored, down_message, stored_time
from workers.adapters.records import (
    Document,
    check_append,
    check_read,
    check_select,
    conflict,
    document_to_event,
    event_to_document,
    transactions_unsupported,
)
from workers.ports import (
    AggregateRef,
    EventQuery,
    Head,
    SearchPosition,
    StoredEvents,
)

SCAN_BATCH = 100
"""Events per scan round trip; like a cursor's batches, later ones see later inserts."""

_Position = tuple[str, str, int]


def _position(doc: Document) -> _Position:
    return (doc["aggregate_type"], doc["aggregate_id"], doc["version"])


def _event(doc: Document) -> Event:
    """A fresh event for every reader, as a database gives: no one can change what is stored."""
    return document_to_event(as_stored(doc))


class MemoryEventStore(Switchable):
    """Events in dictionaries: unique by id and by (aggregate, version), flagged while unpublished.

    ``transactions=False`` acts as a standalone mongod: appends across aggregates are refused.
    """

    def __init__(self, *, scan_batch: int = SCAN_BATCH, transactions: bool = True) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("event store", what)))
        self._scan_batch = scan_batch
        self._transactions = transactions
        self._by_id: dict[str, Document] = {}
        self._by_aggregate: dict[AggregateRef, dict[int, Document]] = {}
        self._pending: set[str] = set()

    async def append(self, events: Sequence[Event], *, pending_publish: bool = False) -> None:
        if not events:
            return
        check_append(events)
        await self.faults.enter("append", f"appending {len(events)} events")
        self._insert(events, pending_publish)

    def _insert(self, events: Sequence[Event], pending_publish: bool) -> None:
        """Insert in order, stopping at the first taken id or version (no suspension in it)."""
        for index, event in enumerate(events):
            versions = self._by_aggregate.setdefault((event.aggregate_type, event.aggregate_id), {})
            id_taken = event.id in self._by_id
            if id_taken or (event.version or 0) in versions:
                raise conflict(event, index, id_taken=id_taken)
            stored = as_stored(event_to_document(event))
            self._by_id[event.id] = stored
            versions[event.version or 0] = stored
            if pending_publish:
                self._pending.add(event.id)

    async def append_atomically(
        self, events: Sequence[Event], *, pending_publish: bool = False
    ) -> None:
        if not events:
            return
        check_append(events)
        if not self._transactions:
            raise transactions_unsupported(events)
        await self.faults.enter(
            "append_atomically", f"appending {len(events)} events in one transaction"
        )
        ids: set[str] = set()
        versions: set[tuple[str, str, int]] = set()
        for event in events:  # every check before the first insert: all or none
            ref = (event.aggregate_type, event.aggregate_id)
            id_taken = event.id in self._by_id
            version = event.version or 0
            if (
                id_taken
                or event.id in ids
                or version in self._by_aggregate.get(ref, {})
                or ((*ref, version) in versions)
            ):
                raise conflict(event, 0, id_taken=id_taken)
            ids.add(event.id)
            versions.add((*ref, version))
        self._insert(events, pending_publish)  # checked in the same step: no writer between

    async def select(
        self,
        aggregate: AggregateRef,
        *,
        after: int | None = None,
        before: int | None = None,
        desc: bool = False,
        limit: int | None = None,
        types: Sequence[str] | None = None,
        as_of: datetime | None = None,
    ) -> list[Event]:
        check_select(limit, types)
        await self.faults.enter("select", f"reading {aggregate[0]} {aggregate[1]}")
        until = None if as_of is None else stored_time(as_of)
        wanted = None if types is None else frozenset(types)
        found = [
            doc
            for version, doc in sorted(self._by_aggregate.get(aggregate, {}).items(), reverse=desc)
            if (after is None or version > after)
            and (before is None or version < before)
            and (wanted is None or doc["type"] in wanted)
            and (until is None or doc["occurred_at"] <= until)
        ]
        return [_event(doc) for doc in found[:limit]]

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        refs = list(dict.fromkeys(aggregates))
        await self.faults.enter("heads", f"reading the newest events of {len(refs)} aggregates")
        found = {}
        for ref in refs:
            versions = self._by_aggregate.get(ref)
            if versions:
                last = versions[max(versions)]
                found[ref] = Head(last["version"], last["_id"], last["type"])
        return found

    async def find(
        self, ids: Sequence[str], *, aggregates: Sequence[AggregateRef] = ()
    ) -> dict[str, Event]:  # one process, no shards: ``aggregates`` changes nothing
        if not ids:
            return {}
        await self.faults.enter("find", f"looking up {len(ids)} event ids")
        return {id: _event(self._by_id[id]) for id in ids if id in self._by_id}

    async def scan(self, aggregate_types: Sequence[str]) -> AsyncIterator[Event]:
        wanted = frozenset(aggregate_types)
        after: _Position | None = None
        while True:
            await self.faults.enter("scan", f"reading the events of {', '.join(aggregate_types)}")
            batch = sorted(
                (d for d in self._by_id.values() if d["aggregate_type"] in wanted), key=_position
            )
            if after is not None:
                batch = [d for d in batch if _position(d) > after]
            for doc in batch[: self._scan_batch]:
                yield _event(doc)
            if len(batch) <= self._scan_batch:
                return
            after = _position(batch[self._scan_batch - 1])

    async def count(self, aggregate_types: Sequence[str]) -> int:
        await self.faults.enter("count", f"counting the events of {', '.join(aggregate_types)}")
        wanted = frozenset(aggregate_types)
        return sum(d["aggregate_type"] in wanted for d in self._by_id.values())

    async def search(
        self, query: EventQuery, *, limit: int, before: SearchPosition | None = None
    ) -> list[Event]:
        check_read(limit)
        await self.faults.enter("search", "searching the events")
        found = sorted(
            (d for d in self._by_id.values() if _matches(d, query)),
            key=lambda d: (d["occurred_at"], d["_id"]),
            reverse=True,
        )
        if before is not None:
            at, event_id = stored_time(before[0]), before[1]
            found = [d for d in found if (d["occurred_at"], d["_id"]) < (at, event_id)]
        return [_event(doc) for doc in found[:limit]]

    async def versions(self, aggregate_types: Sequence[str]) -> dict[AggregateRef, int]:
        await self.faults.enter(
            "versions", f"reading the last version of every {', '.join(aggregate_types)}"
        )
        return {
            ref: max(versions)
            for ref, versions in self._by_aggregate.items()
            if versions and ref[0] in aggregate_types
        }

    async def pending(self, *, older_than: datetime, limit: int) -> list[Event]:
        await self.faults.enter("pending", "reading events waiting to be published")
        until = stored_time(older_than)
        flagged = sorted(
            (self._by_id[id] for id in self._pending if self._by_id[id]["occurred_at"] <= until),
            key=_position,
        )
        return [_event(doc) for doc in flagged[: limit or None]]

    async def pending_before(self, aggregate: AggregateRef, version: int) -> list[Event]:
        await self.faults.enter(
            "pending_before", f"reading unpublished events of {aggregate[0]} {aggregate[1]}"
        )
        versions = self._by_aggregate.get(aggregate, {})
        return [
            _event(versions[v])
            for v in sorted(versions)
            if v < version and versions[v]["_id"] in self._pending
        ]

    async def clear_pending(self, ids: Sequence[str]) -> None:
        await self.faults.enter("clear_pending", "clearing the publish flag")
        self._pending.difference_update(ids)

    async def insert_missing(self, events: Sequence[Event]) -> int:
        await self.faults.enter("insert_missing", f"archiving {len(events)} events")
        missing = [e for e in events if e.id not in self._by_id]
        await self.append(missing)
        return len(missing)

    async def remove_through(self, aggregate: AggregateRef, version: int) -> int:
        await self.faults.enter("remove_through", f"removing {aggregate[0]} {aggregate[1]}")
        versions = self._by_aggregate.get(aggregate, {})
        gone = [v for v in versions if v <= version]
        for v in gone:
            doc = versions.pop(v)
            del self._by_id[doc["_id"]]
            self._pending.discard(doc["_id"])
        return len(gone)


def _matches(doc: Document, query: EventQuery) -> bool:
    meta = doc["metadata"]
    return (
        (query.aggregate_type is None or doc["aggregate_type"] == query.aggregate_type)
        and (not query.id_prefix or doc["aggregate_id"].startswith(query.id_prefix))
        and (query.event_type is None or doc["type"] == query.event_type)
        and (query.since is None or doc["occurred_at"] >= stored_time(query.since))
        and (query.until is None or doc["occurred_at"] < stored_time(query.until))
        and (query.command_id is None or meta.get("command_id") == query.command_id)
        and (query.correlation_id is None or meta.get("correlation_id") == query.correlation_id)
    )


def _implements(store: MemoryEventStore) -> StoredEvents:
    """Never called: mypy checks here that the class keeps the core's and every capability's
    signatures."""
    return store
