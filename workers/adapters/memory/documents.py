"""The in-memory document store: the MongoDB one's contract, transactions or intents, in
dictionaries.

With ``transactions`` a change and its event are applied together or not at all (a fault hook
that raises leaves neither); without, the document write keeps the event as an intent, as on a
standalone MongoDB, so a fault between the two writes leaves what a crash there leaves. Every
write tells the change feeds on the collection, as a change stream does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from topics.envelope import Event
from topics.errors import StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, as_stored, down_message
from workers.adapters.memory.events import MemoryEventStore
from workers.ports import AppendConflict
from workers.storage.documents import ID, PENDING_EVENT, disagree
from workers.storage.ports import (
    AFTER_DOCUMENT_WRITE,
    AFTER_EVENT_WRITE,
    ChangeFeed,
    Document,
    DocumentStore,
    FaultHook,
    FaultPoint,
    Invalidations,
    Loaded,
    Outcome,
    PlannedChange,
    WatchState,
    no_fault,
)


@dataclass(eq=False)
class _Collection:
    """One collection's documents (intents inside them), shared by every handle on it."""

    docs: dict[str, tuple[Document, Event | None]] = field(default_factory=dict)
    feeds: set[_MemoryFeed] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def changed(self, doc_id: str) -> None:
        for feed in list(self.feeds):
            feed.cache.invalidate(doc_id)


class MemoryDocuments(Switchable):
    """A storage collection in a dictionary, its events in a ``MemoryEventStore`` (``archive``:
    where a retention moves older ones; pass the fleet's to share it).

    ``transactions=False`` takes the intent path; ``fault_hook`` is called at each fault point.
    ``handle()`` gives another writer on the same documents and events (another process).
    """

    def __init__(
        self,
        name: str,
        *,
        events: MemoryEventStore | None = None,
        archive: MemoryEventStore | None = None,
        transactions: bool = True,
        fault_hook: FaultHook | None = None,
        _collection: _Collection | None = None,
    ) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("document store", what)))
        self._name = name
        self._events = events if events is not None else MemoryEventStore()
        self._archive = archive if archive is not None else MemoryEventStore()
        self._transactions = transactions
        self._fault = fault_hook or no_fault
        self._collection = _collection if _collection is not None else _Collection()
        self._opened = False

    def handle(
        self, *, transactions: bool | None = None, fault_hook: FaultHook | None = None
    ) -> MemoryDocuments:
        """Another writer on these documents and events, with its own settings."""
        return MemoryDocuments(
            self._name,
            events=self._events,
            archive=self._archive,
            transactions=self._transactions if transactions is None else transactions,
            fault_hook=fault_hook,
            _collection=self._collection,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def events(self) -> MemoryEventStore:
        return self._events

    @property
    def archive(self) -> MemoryEventStore:
        return self._archive

    @property
    def transactions(self) -> bool | None:
        return self._transactions if self._opened else None

    def raw(self, doc_id: str) -> Document | None:
        """The document as stored, its intent included (what a crash left, for tests)."""
        found = self._collection.docs.get(doc_id)
        if found is None:
            return None
        doc, pending = found
        return {**as_stored(doc), **({PENDING_EVENT: pending.id} if pending else {})}

    async def open(self) -> None:
        await self.faults.enter("open", f"creating the indexes of {self._name}")
        self._opened = True

    async def load(self, doc_id: str) -> Loaded:
        await self.faults.enter("load", f"reading {self._name} {doc_id}")
        found = self._collection.docs.get(doc_id)
        if found is None:
            return Loaded(None)
        return Loaded(as_stored(found[0]), found[1])

    async def interrupted(self) -> list[tuple[str, Event]]:
        await self.faults.enter("interrupted", f"looking for interrupted changes in {self._name}")
        return [(i, e) for i, (_, e) in sorted(self._collection.docs.items()) if e is not None]

    async def commit(self, change: PlannedChange) -> Outcome:
        await self.open()
        await self.faults.enter(
            "commit", f"writing version {change.event.version} of {_name(change)}"
        )
        if self._transactions:
            return await self._commit_together(change)
        return await self._commit_by_intent(change)

    async def _commit_together(self, change: PlannedChange) -> Outcome:
        async with self._collection.lock:  # one transaction at a time: check and apply as one
            if not self._fits(change):
                return "conflict"
            event = change.event
            self._fault(FaultPoint(AFTER_DOCUMENT_WRITE, event, None))
            version = event.version or 0
            ref = (event.aggregate_type, event.aggregate_id)
            if await self._events.select(ref, after=version - 1, before=version + 1):
                raise disagree(event, change.doc_id)
            # Nothing is applied before the last fault point: a crash there leaves neither.
            self._fault(FaultPoint(AFTER_EVENT_WRITE, event, None))
            try:
                await self._events.append([event], pending_publish=True)
            except AppendConflict as e:
                raise disagree(event, change.doc_id) from e
            self._write(change.doc_id, change.replacement, None)
        return "committed"

    async def _commit_by_intent(self, change: PlannedChange) -> Outcome:
        if not self._fits(change):
            return "conflict"
        self._write(change.doc_id, change.replacement, change.event)
        self._fault(FaultPoint(AFTER_DOCUMENT_WRITE, change.event, None))
        if await self.complete(change.doc_id, change.event, self._fault):
            return "committed"
        return "committed_event_by_other"

    async def complete(self, doc_id: str, event: Event, fault: FaultHook = no_fault) -> bool:
        try:
            await self._events.append([event], pending_publish=True)
            stored = True
        except AppendConflict as e:
            if not e.id_taken:
                raise disagree(event, doc_id) from e
            stored = False
        fault(FaultPoint(AFTER_EVENT_WRITE, event, None))
        await self.faults.enter(
            "complete", f"clearing the pending event of {_name_of(event, doc_id)}"
        )
        found = self._collection.docs.get(doc_id)
        if found is not None and found[1] is not None and found[1].id == event.id:
            self._write(doc_id, found[0], None)
        return stored

    def watch(self, cache: Invalidations) -> ChangeFeed:
        return _MemoryFeed(self._collection, cache, self.faults)

    def _fits(self, change: PlannedChange) -> bool:
        """The version check of the write: absent when creating, else at the expected version
        with no intent pending."""
        found = self._collection.docs.get(change.doc_id)
        if change.expected_version is None:
            return found is None
        return (
            found is not None
            and found[1] is None
            and found[0].get(change.version_field) == change.expected_version
        )

    def _write(self, doc_id: str, doc: Document, pending: Event | None) -> None:
        stored = as_stored(doc)
        stored[ID] = doc_id
        self._collection.docs[doc_id] = (stored, pending)
        self._collection.changed(doc_id)


class _MemoryFeed:
    """``ChangeFeed`` of a memory collection: every write on it invalidates the cache."""

    def __init__(self, collection: _Collection, cache: Invalidations, faults: Faults) -> None:
        self._collection = collection
        self.cache = cache
        self._faults = faults
        self.state: WatchState = "off"
        self.resumes = 0

    async def ensure(self) -> bool:
        if self.state == "off":
            try:
                await self._faults.enter("watch", "following the changes")
            except StoreUnavailable:
                return False  # as a change stream that cannot open: do not cache, ask again
            self.cache.clear()  # what was cached before the feed ran may be stale
            self._collection.feeds.add(self)
            self.state = "watching"
        return True

    async def close(self) -> None:
        self._collection.feeds.discard(self)
        self.state = "off"
        self.cache.clear()


def _name(change: PlannedChange) -> str:
    return _name_of(change.event, change.doc_id)


def _name_of(event: Event, doc_id: str) -> str:
    return f"{event.aggregate_type} {doc_id}"


def _implements(documents: MemoryDocuments) -> DocumentStore:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return documents
