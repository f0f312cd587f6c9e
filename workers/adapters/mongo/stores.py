"""MongoDB adapters for the event, snapshot and rejection stores, and the one event ↔ document
mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pymongo
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from topics.envelope import Event
from topics.errors import StoreError
from workers.adapters.mongo.client import Document, durable, translated
from workers.adapters.mongo.transactions import append_in_transaction, supports_transactions
from workers.adapters.records import (
    check_append,
    check_read,
    check_select,
    conflict,
    document_to_event,
    event_to_document,
    refs_of,
    transactions_unsupported,
)
from workers.ports import (
    STORE_VERDICTS,
    AggregateRef,
    EventQuery,
    Head,
    Rejection,
    SearchPosition,
    Snapshot,
    StoredEvents,
)

EVENTS = "events"
EVENTS_ARCHIVE = "events_archive"
"""Events moved out of the hot collection past a domain's retention: same documents and ids."""
PENDING = "pending_publish"
"""Set on events stored before they reach events.stored (sync mode, storage); see outbox."""
PENDING_INDEX = "pending_publish_by_aggregate"
SNAPSHOTS = "snapshots"
REJECTIONS = "rejections"
FIND_IDS = 256  # ids per lookup: SecantusDB's $in grows superlinearly (0.08 s at 256, 1 s at 1000)
READ_BATCH = 1000
"""Documents per round trip of a long read (a history, a scan). The store call's bound
(``timeoutMS``) applies to each round trip, and the server's default fills one with up to 16 MB:
on SecantusDB, 4,400 events of 4 KB came in one getMore of 103 ms, or 12 ms per 1000 (quiet)."""
WHOLE_READ_S = 120.0
"""The bound of ``versions``, one command that reads every event of its types: seconds on a large
store (SecantusDB groups 50,000 events in 2.7 s, and it cannot read in bounded pages: every
sorted range reads the whole collection), so the bound of a request's read (``timeoutMS``, 5 s
by default) would fail it on every try, while each abandoned try goes on in the store."""


class MongoEventStore:
    """Events in one collection, unique on (aggregate_type, aggregate_id, version)."""

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = EVENTS) -> None:
        self.collection = durable(db, collection)
        self._transactions: bool | None = None  # asked once (``hello``), when first needed

    async def ensure_indexes(self) -> None:
        async with translated("creating the events indexes"):
            await self.collection.create_index(
                [
                    ("aggregate_type", ASCENDING),
                    ("aggregate_id", ASCENDING),
                    ("version", ASCENDING),
                ],
                unique=True,
                name="aggregate_version",
            )
            # Only flagged events are in it: the outbox finds an aggregate's without a scan.
            await self.collection.create_index(
                [
                    (PENDING, ASCENDING),
                    ("aggregate_type", ASCENDING),
                    ("aggregate_id", ASCENDING),
                    ("version", ASCENDING),
                ],
                sparse=True,
                name=PENDING_INDEX,
            )
            if PENDING in await self.collection.index_information():
                await self.collection.drop_index(PENDING)  # the index of earlier releases

    async def append(
        self,
        events: Sequence[Event],
        *,
        session: AsyncClientSession | None = None,
        pending_publish: bool = False,
    ) -> None:
        if not events:
            return
        check_append(events)
        docs = [event_to_document(event) for event in events]
        if pending_publish:
            for doc in docs:
                doc[PENDING] = True
        try:
            async with translated(f"appending {len(docs)} events", write=True):
                await self.collection.insert_many(docs, ordered=True, session=session)
        except StoreError as e:
            index = _duplicate_index(e.__cause__)
            if index is None:
                raise
            failed = events[index]
            # Both unique indexes may fire; the server names only one. Ask for the id.
            # By id alone, on purpose: the id may be taken under another aggregate.
            id_taken = session is None and bool(await self.find([failed.id]))
            raise conflict(failed, index, id_taken=id_taken) from e.__cause__

    async def append_atomically(
        self, events: Sequence[Event], *, pending_publish: bool = False
    ) -> None:
        if not events:
            return
        check_append(events)
        if self._transactions is None:
            self._transactions = await supports_transactions(self.collection.database.client)
        if not self._transactions:
            raise transactions_unsupported(events)
        await append_in_transaction(self, events, pending_publish=pending_publish)

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
        query: Document = {"aggregate_type": aggregate[0], "aggregate_id": aggregate[1]}
        version: Document = {}
        if after is not None and after > 0:  # every stored version is 1 or more
            version["$gt"] = after
        if before is not None:
            version["$lt"] = before
        if version:
            query["version"] = version
        if types is not None:
            query["type"] = {"$in": list(types)}
        if as_of is not None:
            query["occurred_at"] = {"$lte": as_of}
        what = f"reading {aggregate[0]} {aggregate[1]}{' backwards' if desc else ''}"
        async with translated(what):
            # The (aggregate, version) index, walked either way: no sort in memory, no skip.
            order = DESCENDING if desc else ASCENDING
            cursor = self.collection.find(
                query, sort=[("version", order)], limit=limit or 0, batch_size=READ_BATCH
            )
            return [document_to_event(doc) async for doc in cursor]

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        refs = list(dict.fromkeys(aggregates))
        async with translated(f"reading the newest events of {len(refs)} aggregates"):
            # One indexed lookup each, all in flight at once (bounded by the driver's pool).
            docs = await asyncio.gather(
                *(
                    self.collection.find_one(
                        {"aggregate_type": aggregate_type, "aggregate_id": aggregate_id},
                        projection={"version": 1, "type": 1},
                        sort=[("version", DESCENDING)],
                    )
                    for aggregate_type, aggregate_id in refs
                )
            )
        return {
            ref: Head(int(doc["version"]), str(doc["_id"]), str(doc["type"]))
            for ref, doc in zip(refs, docs, strict=True)
            if doc is not None
        }

    async def find(
        self, ids: Sequence[str], *, aggregates: Sequence[AggregateRef] = ()
    ) -> dict[str, Event]:
        if not ids:
            return {}
        unique = list(dict.fromkeys(ids))
        found: dict[str, Event] = {}
        for i in range(0, len(unique), FIND_IDS):  # each call bounded, however many are asked
            chunk = unique[i : i + FIND_IDS]
            async with translated(f"looking up {len(chunk)} event ids"):
                cursor = self.collection.find(id_query(chunk, aggregates))
                found.update({doc["_id"]: document_to_event(doc) async for doc in cursor})
        return found

    async def scan(self, aggregate_types: Sequence[str]) -> AsyncIterator[Event]:
        query = {"aggregate_type": {"$in": sorted(aggregate_types)}}
        async with translated(f"reading the events of {', '.join(aggregate_types)}"):
            async for doc in self.collection.find(query, sort=_BY_AGGREGATE, batch_size=READ_BATCH):
                yield document_to_event(doc)

    async def search(
        self, query: EventQuery, *, limit: int, before: SearchPosition | None = None
    ) -> list[Event]:
        check_read(limit)
        found: Document = {}
        if query.aggregate_type is not None:
            found["aggregate_type"] = query.aggregate_type
        if query.id_prefix:  # a range, not a regex: the prefix is data, never a pattern
            found["aggregate_id"] = {"$gte": query.id_prefix, "$lt": query.id_prefix + "\U0010ffff"}
        if query.event_type is not None:
            found["type"] = query.event_type
        moment: Document = {}
        if query.since is not None:
            moment["$gte"] = query.since
        if query.until is not None:
            moment["$lt"] = query.until
        if moment:
            found["occurred_at"] = moment
        if query.command_id is not None:
            found["metadata.command_id"] = query.command_id
        if query.correlation_id is not None:
            found["metadata.correlation_id"] = query.correlation_id
        if before is not None:
            at, event_id = before
            found = {
                "$and": [
                    found,
                    {
                        "$or": [
                            {"occurred_at": {"$lt": at}},
                            {"occurred_at": at, "_id": {"$lt": event_id}},
                        ]
                    },
                ]
            }
        newest_first = [("occurred_at", DESCENDING), ("_id", DESCENDING)]
        async with translated("searching the events"):
            cursor = self.collection.find(found, sort=newest_first, limit=limit)
            return [document_to_event(doc) async for doc in cursor]

    async def count(self, aggregate_types: Sequence[str]) -> int:
        query = {"aggregate_type": {"$in": sorted(aggregate_types)}}
        async with translated(f"counting the events of {', '.join(aggregate_types)}"):
            return await self.collection.count_documents(query)

    async def versions(self, aggregate_types: Sequence[str]) -> dict[AggregateRef, int]:
        query = {"aggregate_type": {"$in": sorted(aggregate_types)}}
        group = {"_id": {"t": "$aggregate_type", "i": "$aggregate_id"}, "v": {"$max": "$version"}}
        what = f"reading the last version of every {', '.join(aggregate_types)}"
        async with translated(what):
            # The long bound is the read's, not the wait for the store (under a bound of its
            # own, pymongo selects a server for as long): a store not known to be up is reached
            # first within the client's own bound, so one that is down is told as soon as for
            # every other call.
            if not self.collection.database.client.topology_description.has_readable_server():
                await self.collection.database.command("ping")
            with pymongo.timeout(WHOLE_READ_S):
                cursor = await self.collection.aggregate([{"$match": query}, {"$group": group}])
                return {(d["_id"]["t"], d["_id"]["i"]): int(d["v"]) async for d in cursor}

    async def insert_missing(self, events: Sequence[Event]) -> int:
        if not events:
            return 0
        have = await self.find([e.id for e in events], aggregates=refs_of(events))
        missing = [e for e in events if e.id not in have]
        await self.append(missing)
        return len(missing)

    async def remove_through(self, aggregate: AggregateRef, version: int) -> int:
        query = {
            "aggregate_type": aggregate[0],
            "aggregate_id": aggregate[1],
            "version": {"$lte": version},
        }
        async with translated(
            f"removing {aggregate[0]} {aggregate[1]} through {version}", write=True
        ):
            return (await self.collection.delete_many(query)).deleted_count

    async def pending(self, *, older_than: datetime, limit: int) -> list[Event]:
        query = {PENDING: True, "occurred_at": {"$lte": older_than}}
        async with translated("reading events waiting to be published"):
            cursor = self.collection.find(query, sort=_BY_AGGREGATE, limit=limit)
            return [document_to_event(doc) async for doc in cursor]

    async def pending_before(self, aggregate: AggregateRef, version: int) -> list[Event]:
        query = {
            PENDING: True,
            "aggregate_type": aggregate[0],
            "aggregate_id": aggregate[1],
            "version": {"$lt": version},
        }
        async with translated(f"reading unpublished events of {aggregate[0]} {aggregate[1]}"):
            cursor = self.collection.find(query, sort=[("version", ASCENDING)], hint=PENDING_INDEX)
            return [document_to_event(doc) async for doc in cursor]

    async def clear_pending(self, ids: Sequence[str]) -> None:
        async with translated("clearing the publish flag"):
            await self.collection.update_many(
                {"_id": {"$in": list(ids)}}, {"$unset": {PENDING: ""}}
            )


_BY_AGGREGATE = [("aggregate_type", ASCENDING), ("aggregate_id", ASCENDING), ("version", ASCENDING)]


def id_query(ids: Sequence[str], aggregates: Sequence[AggregateRef] = ()) -> Document:
    """Events by id; with their aggregates the query carries the shard key, so mongos targets.

    Sharded on {aggregate_type, aggregate_id}, an ``_id``-only query goes to every shard.
    """
    query: Document = {"_id": {"$in": list(dict.fromkeys(ids))}}
    refs = list(dict.fromkeys(aggregates))
    if len(refs) == 1:
        query["aggregate_type"], query["aggregate_id"] = refs[0]
    elif refs:
        query["$or"] = [{"aggregate_type": t, "aggregate_id": i} for t, i in refs]
    return query


def _duplicate_index(error: BaseException | None) -> int | None:
    """Index of the event a duplicate-key error stopped at, or None for other errors.

    None too beside a write concern error: the events before the duplicate were applied less
    durably than asked, and a conflict would call them stored (the store's error stands).
    """
    if isinstance(error, BulkWriteError):
        if error.details.get("writeConcernErrors"):
            return None
        write_errors = error.details.get("writeErrors") or []
        if write_errors and write_errors[0].get("code") == 11000:
            return int(write_errors[0]["index"])
    if isinstance(error, DuplicateKeyError):
        return 0
    return None


def snapshot_id(aggregate: AggregateRef) -> str:
    return f"{aggregate[0]}:{aggregate[1]}"


class MongoSnapshotStore:
    """One document per aggregate; a version guard keeps it from moving backwards."""

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = SNAPSHOTS) -> None:
        self.collection: AsyncCollection[Document] = db[collection]

    async def load(self, aggregate: AggregateRef) -> Snapshot | None:
        async with translated(f"loading the snapshot of {aggregate[0]} {aggregate[1]}"):
            doc = await self.collection.find_one({"_id": snapshot_id(aggregate)})
        return None if doc is None else to_snapshot(doc)

    async def load_many(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Snapshot]:
        if not aggregates:
            return {}
        ids = [snapshot_id(aggregate) for aggregate in set(aggregates)]
        async with translated(f"loading {len(ids)} snapshots"):
            cursor = self.collection.find({"_id": {"$in": ids}})
            snapshots = [to_snapshot(doc) async for doc in cursor]
        return {(s.aggregate_type, s.aggregate_id): s for s in snapshots}

    async def save(self, snapshot: Snapshot) -> bool:
        aggregate = (snapshot.aggregate_type, snapshot.aggregate_id)
        try:
            async with translated(f"saving the snapshot of {aggregate[0]} {aggregate[1]}"):
                result = await self.collection.update_one(
                    {"_id": snapshot_id(aggregate), "version": {"$lt": snapshot.version}},
                    {"$set": snapshot_document(snapshot)},
                    upsert=True,
                )
        except StoreError as e:
            if isinstance(e.__cause__, DuplicateKeyError):
                return False  # a snapshot of the same or a newer version is already there
            raise
        return result.upserted_id is not None or result.modified_count == 1


def snapshot_document(snapshot: Snapshot) -> Document:
    """A snapshot's fields as stored (the snapshot store's document, a ladder rung's)."""
    return {
        "aggregate_type": snapshot.aggregate_type,
        "aggregate_id": snapshot.aggregate_id,
        "version": snapshot.version,
        "state": snapshot.state,
        "taken_at": snapshot.taken_at,
    }


def to_snapshot(doc: Document) -> Snapshot:
    """A stored snapshot (or ladder rung) read back."""
    return Snapshot(
        aggregate_type=doc["aggregate_type"],
        aggregate_id=doc["aggregate_id"],
        version=int(doc["version"]),
        state=doc["state"],
        taken_at=doc["taken_at"].astimezone(UTC),
    )


class MongoRejections:
    """Events the appender refused, one document per event id."""

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = REJECTIONS) -> None:
        self.collection = durable(db, collection)

    async def record(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        judged = [r.event_id for r in rejections if r.reason in STORE_VERDICTS]
        requests = [
            UpdateOne({"_id": r.event_id}, {"$setOnInsert": _rejection_document(r)}, upsert=True)
            for r in rejections
        ]
        async with translated(f"recording {len(rejections)} rejected events", write=True):
            if judged:  # a verdict replaces a dead-lettered copy's fate
                fates = {"_id": {"$in": judged}, "reason": {"$nin": sorted(STORE_VERDICTS)}}
                await self.collection.delete_many(fates)
            await self.collection.bulk_write(requests, ordered=False)

    async def find(self, event_ids: Sequence[str]) -> dict[str, Rejection]:
        if not event_ids:
            return {}
        async with translated(f"looking up {len(event_ids)} rejected events"):
            cursor = self.collection.find({"_id": {"$in": list(event_ids)}})
            return {doc["_id"]: _to_rejection(doc) async for doc in cursor}


def _rejection_document(rejection: Rejection) -> Document:
    document: Document = {
        "aggregate_type": rejection.aggregate_type,
        "aggregate_id": rejection.aggregate_id,
        "event_type": rejection.event_type,
        "reason": rejection.reason,
        "message": rejection.message,
        "command_id": rejection.command_id,
        "rejected_at": rejection.rejected_at,
    }
    if rejection.current_version is not None:  # absent, documents look as they did before
        document["current_version"] = rejection.current_version
    return document


def _to_rejection(doc: Document) -> Rejection:
    return Rejection(
        event_id=doc["_id"],
        aggregate_type=doc["aggregate_type"],
        aggregate_id=doc["aggregate_id"],
        event_type=doc["event_type"],
        reason=doc["reason"],
        message=doc["message"],
        command_id=doc.get("command_id"),
        rejected_at=doc["rejected_at"].astimezone(UTC),
        current_version=doc.get("current_version"),
    )


def _implements(store: MongoEventStore) -> StoredEvents:
    """Never called: mypy checks here that the store keeps the core's and every capability's
    signatures (``tests/contracts/test_capabilities.py`` checks that it offers them)."""
    return store
