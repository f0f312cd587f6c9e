"""How a document change and its event commit together: one transaction, or an intent.

``TransactionWriter`` (replica sets, sharded clusters): the version-checked document
write and the event insert share one MongoDB transaction; a crash before the commit
leaves neither.

``IntentWriter`` (no transactions, e.g. a standalone server): the version-checked
document write also stores the event in the document (``_pending_event``), atomically,
since it is one document. Then the event is inserted and the marker cleared. A crash
in between leaves a marked document; whoever touches it next (any read or write of the
storage, or ``recover()``) inserts the event (idempotent by event id) and clears the
marker. So the event is never stored without its change, and after recovery no change
is without its event. Until then readers of the raw collection may see the change early.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from topics.envelope import Event
from topics.errors import StoreUnavailable
from workers.adapters.mongo import MongoEventStore, StoreError, event_to_document, translated
from workers.ports import AppendConflict
from workers.storage.documents import ID, PENDING_EVENT, VERSION, Document

Outcome = Literal["conflict", "committed", "committed_event_by_other"]
"""``committed_event_by_other``: a concurrent reader stored (and publishes) the event first."""
AFTER_DOCUMENT_WRITE = "after_document_write"
AFTER_EVENT_WRITE = "after_event_write"


@dataclass(frozen=True, slots=True)
class FaultPoint:
    """Where a change is when the fault hook is called: crash tests raise or die here."""

    point: str
    """AFTER_DOCUMENT_WRITE or AFTER_EVENT_WRITE."""
    event: Event
    session_id: Mapping[str, Any] | None
    """The transaction's logical session id (None on the intent path)."""


FaultHook = Callable[[FaultPoint], None]


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One version step of one document: the version it replaces, the new document, its event."""

    doc_id: str
    expected_version: int | None
    """None: no document with this id exists yet."""
    replacement: Document
    event: Event


class Writer(Protocol):
    """Commits a planned change and its event together."""

    async def commit(self, change: PlannedChange) -> Outcome:
        """``conflict`` if the document moved past ``expected_version`` first: nothing written."""
        ...


class _Stale(Exception):
    """The version check failed inside a transaction: abort it and let the caller re-read."""


def _no_fault(point: FaultPoint) -> None:
    return None


async def supports_transactions(client: AsyncMongoClient[Document]) -> bool:
    """Replica sets and mongos run multi-document transactions; a standalone server does not."""
    async with translated("asking the server whether it runs transactions"):
        hello = await client.admin.command("hello")
    return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"


class TransactionWriter:
    """Document write and event insert in one MongoDB transaction."""

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        docs: AsyncCollection[Document],
        events: MongoEventStore,
        fault_hook: FaultHook | None = None,
    ) -> None:
        self._client = client
        self._docs = docs
        self._events = events
        self._fault = fault_hook or _no_fault

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


class IntentWriter:
    """Without transactions: the document carries its pending event until the event is stored."""

    def __init__(
        self,
        docs: AsyncCollection[Document],
        events: MongoEventStore,
        fault_hook: FaultHook | None = None,
    ) -> None:
        self._docs = docs
        self._events = events
        self._fault = fault_hook or _no_fault

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
                    VERSION: change.expected_version,
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
    events: MongoEventStore, doc_id: str, event: Event, *, session: Any = None
) -> bool:
    """Store the change's event; True if stored now, False if it already was.

    The same event again is fine; another event at its version is not.
    """
    try:
        await events.append([event], session=session, pending_publish=True)
    except AppendConflict as e:
        if e.id_taken:
            return False
        raise StoreError(
            f"{event.aggregate_type} {doc_id}: the event store already holds another event at "
            f"version {event.version}, so the collection and the event store disagree (was the "
            "document removed or rewritten outside the storage?)."
        ) from e
    return True


async def complete_pending(
    docs: AsyncCollection[Document],
    events: MongoEventStore,
    doc_id: str,
    event: Event,
    fault: FaultHook = _no_fault,
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
