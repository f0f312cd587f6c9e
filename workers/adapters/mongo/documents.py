"""``DocumentStore`` on MongoDB: a change and its event commit together, in a transaction or by an
intent.

On a replica set or a sharded cluster (``transactions``), the version-checked document write and
the event insert share one MongoDB transaction; a crash before the commit leaves neither.

On a standalone server (no transactions), the version-checked document write also stores the
event in the document (``_pending_event``), atomically, since it is one document. Then the event
is inserted and the intent cleared. A crash in between leaves a marked document; whoever touches
it next (any read or write of the storage, or ``interrupted()``) inserts the event (idempotent by
event id) and clears the intent. So the event is never stored without its change, and after
recovery no change is without its event. Until then readers of the raw collection may see the
change early.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from topics.envelope import Event
from topics.errors import StoreError, StoreUnavailable
from workers.adapters.mongo.changes import ChangeWatcher
from workers.adapters.mongo.client import translated
from workers.adapters.mongo.stores import EVENTS_ARCHIVE, MongoEventStore
from workers.adapters.mongo.transactions import supports_transactions
from workers.adapters.records import document_to_event, event_to_document
from workers.ports import AppendConflict
from workers.storage.documents import ID, PENDING_EVENT, disagree
from workers.storage.ports import (
    AFTER_DOCUMENT_WRITE,
    AFTER_EVENT_WRITE,
    Document,
    FaultHook,
    FaultPoint,
    Invalidations,
    Loaded,
    Outcome,
    PlannedChange,
    no_fault,
)


class MongoDocuments:
    """A storage collection in MongoDB, its events in the fleet's ``events`` collection.

    ``transactions``: None detects them once (``hello``); False forces the intent path.
    ``fault_hook`` is called at each fault point of a change (crash tests).
    """

    def __init__(
        self,
        db: AsyncDatabase[Document],
        collection: str,
        *,
        transactions: bool | None = None,
        fault_hook: FaultHook | None = None,
    ) -> None:
        self._db = db
        self._docs: AsyncCollection[Document] = db[collection]
        self._events = MongoEventStore(db)
        self._archive = MongoEventStore(db, collection=EVENTS_ARCHIVE)
        self._transactions = transactions
        self._fault = fault_hook or no_fault
        self._writer: _Writer | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self._docs.name

    @property
    def events(self) -> MongoEventStore:
        return self._events

    @property
    def archive(self) -> MongoEventStore:
        """The fleet's ``events_archive``, where a retention moves older events."""
        return self._archive

    @property
    def transactions(self) -> bool | None:
        return None if self._writer is None else isinstance(self._writer, _TransactionWriter)

    async def open(self) -> None:
        if self._writer is not None:
            return
        async with self._lock:
            if self._writer is not None:
                return
            client = self._db.client
            if self._transactions is None:
                self._transactions = await supports_transactions(client)
            await self._events.ensure_indexes()
            await self._archive.ensure_indexes()
            async with translated(f"creating the indexes of {self.name}"):
                await self._docs.create_index(
                    [(f"{PENDING_EVENT}._id", ASCENDING)], sparse=True, name=PENDING_EVENT
                )
            if self._transactions:
                self._writer = _TransactionWriter(client, self._docs, self._events, self._fault)
            else:
                self._writer = _IntentWriter(self._docs, self._events, self._fault)

    async def load(self, doc_id: str) -> Loaded:
        async with translated(f"reading {self.name} {doc_id}"):
            stored = await self._docs.find_one({ID: doc_id})
        if stored is None or PENDING_EVENT not in stored:
            return Loaded(stored)
        return Loaded(stored, document_to_event(stored.pop(PENDING_EVENT)))

    async def interrupted(self) -> list[tuple[str, Event]]:
        async with translated(f"looking for interrupted changes in {self.name}"):
            cursor = self._docs.find({PENDING_EVENT: {"$exists": True}}, projection=[PENDING_EVENT])
            return [(doc[ID], document_to_event(doc[PENDING_EVENT])) async for doc in cursor]

    async def commit(self, change: PlannedChange) -> Outcome:
        await self.open()
        assert self._writer is not None
        return await self._writer.commit(change)

    async def complete(self, doc_id: str, event: Event) -> bool:
        return await complete_pending(self._docs, self._events, doc_id, event)

    def watch(self, cache: Invalidations) -> ChangeWatcher:
        return ChangeWatcher(self._docs, cache)


class _Writer(Protocol):
    """Commits a planned change and its event together."""

    async def commit(self, change: PlannedChange) -> Outcome:
        """``conflict`` if the document moved past ``expected_version`` first: nothing written."""
        ...


class _Stale(Exception):
    """The version check failed inside a transaction: abort it and let the caller re-read."""


class _TransactionWriter:
    """Document write and event insert in one MongoDB transaction."""

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        docs: AsyncCollection[Document],
        events: MongoEventStore,
        fault: FaultHook,
    ) -> None:
        self._client = client
        self._docs = docs
        self._events = events
        self._fault = fault

    async def commit(self, change: PlannedChange) -> Outcome:
        try:
            return "committed" if await self._commit(change) else "conflict"
        except StoreUnavailable as e:
            if isinstance(e.__cause__, PyMongoError) and e.__cause__.has_error_label(
                "TransientTransactionError"
            ):
                return "conflict"  # a concurrent transaction wrote the document first
            raise

    async def _commit(self, change: PlannedChange) -> bool:
        async with translated(f"committing version {change.event.version} of {_name(change)}"):
            try:
                async with self._client.start_session() as session:
                    return await self._commit_in(session, change)
            except _Stale:
                return False
            except PyMongoError as e:
                if not e.has_error_label("UnknownTransactionCommitResult"):
                    raise
                return await self._committed_after_all(change, e)
        raise AssertionError("unreachable: translated() re-raises every error")

    async def _commit_in(self, session: AsyncClientSession, change: PlannedChange) -> bool:
        async with await session.start_transaction():
            if not await write_document(self._docs, change, session=session):
                raise _Stale
            self._fault(FaultPoint(AFTER_DOCUMENT_WRITE, change.event, session.session_id))
            await append_event(self._events, change.doc_id, change.event, session=session)
            self._fault(FaultPoint(AFTER_EVENT_WRITE, change.event, session.session_id))
        return True

    async def _committed_after_all(self, change: PlannedChange, error: PyMongoError) -> bool:
        # Retrying an edit whose commit may have landed could apply it twice: look, don't guess.
        event = change.event
        if await self._events.find(
            [event.id], aggregates=[(event.aggregate_type, event.aggregate_id)]
        ):
            return True
        raise StoreUnavailable(
            f"{_name(change)}: the outcome of committing version {change.event.version} is "
            f"unknown ({error}); read the document before trying again."
        ) from error


class _IntentWriter:
    """Without transactions: the document carries its pending event until the event is stored."""

    def __init__(
        self, docs: AsyncCollection[Document], events: MongoEventStore, fault: FaultHook
    ) -> None:
        self._docs = docs
        self._events = events
        self._fault = fault

    async def commit(self, change: PlannedChange) -> Outcome:
        intent = {PENDING_EVENT: event_to_document(change.event)}
        if not await write_document(self._docs, change, session=None, extra=intent):
            return "conflict"
        self._fault(FaultPoint(AFTER_DOCUMENT_WRITE, change.event, None))
        if await complete_pending(
            self._docs, self._events, change.doc_id, change.event, self._fault
        ):
            return "committed"
        return "committed_event_by_other"


async def write_document(
    docs: AsyncCollection[Document],
    change: PlannedChange,
    *,
    session: AsyncClientSession | None,
    extra: Document | None = None,
) -> bool:
    """Insert, or replace the expected version; False if another writer got there first."""
    new = {**change.replacement, **(extra or {})}
    try:
        async with translated(f"writing version {change.event.version} of {_name(change)}"):
            if change.expected_version is None:
                await docs.insert_one(new, session=session)
                return True
            result = await docs.replace_one(
                {
                    ID: change.doc_id,
                    change.version_field: change.expected_version,
                    PENDING_EVENT: {"$exists": False},
                },
                new,
                session=session,
            )
            return result.matched_count == 1
    except StoreError as e:
        if isinstance(e.__cause__, DuplicateKeyError):
            return False
        raise


async def append_event(
    events: MongoEventStore, doc_id: str, event: Event, *, session: AsyncClientSession | None = None
) -> bool:
    """Store the change's event; True if stored now, False if it already was.

    The same event again is fine; another event at its version is not.
    """
    try:
        await events.append([event], session=session, pending_publish=True)
    except AppendConflict as e:
        if e.id_taken:
            return False
        raise disagree(event, doc_id) from e
    return True


async def complete_pending(
    docs: AsyncCollection[Document],
    events: MongoEventStore,
    doc_id: str,
    event: Event,
    fault: FaultHook = no_fault,
) -> bool:
    """Store a marked document's pending event and clear the marker (both idempotent).

    True if this call stored the event, so it is the one to publish it.
    """
    stored = await append_event(events, doc_id, event)
    fault(FaultPoint(AFTER_EVENT_WRITE, event, None))
    async with translated(f"clearing the pending event of {event.aggregate_type} {doc_id}"):
        await docs.update_one(
            {ID: doc_id, f"{PENDING_EVENT}._id": event.id}, {"$unset": {PENDING_EVENT: ""}}
        )
    return stored


def _name(change: PlannedChange) -> str:
    return f"{change.event.aggregate_type} {change.doc_id}"
