"""EventSourcedStorage: version-checked documents whose every change is stored as an event."""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType
from typing import TypeVar

from prometheus_client import Counter

from topics.envelope import Event
from topics.errors import InvalidInput
from topics.jsonvalue import Json
from workers.metrics import Metrics
from workers.ports import EventBus
from workers.retries import Backoff
from workers.roles.append.outbox import Outbox
from workers.storage import documents as docs
from workers.storage.cache import CachePolicy, CacheStats, DocumentCache
from workers.storage.changes import Changed, CreateOrEdit, applied, changed, plan_change
from workers.storage.diff import merge_diff
from workers.storage.mappers import ChangeEvents, EventMapper, storage_event_types
from workers.storage.ports import Document, DocumentStore, PlannedChange
from workers.storage.publish import publish_change

log = logging.getLogger(__name__)

Edit = Callable[[Document], Document | Awaitable[Document]]
"""Gets a copy of the current document and returns the new one (it may change and return it)."""
T = TypeVar("T")
_Decide = Callable[[Document | None], Awaitable[tuple[PlannedChange | None, T]]]


class _Beaten(Exception):
    """Another writer committed first: read again, decide again."""


def conflict_retries(max_retries: int) -> Backoff:
    """The tries of one change: the first and ``max_retries`` more, each after a wait drawn up
    to 2 ms doubling to 50 ms (full jitter: writers that collided do not collide again)."""
    return Backoff(first_s=0.002, max_s=0.05, attempts=max_retries + 1, full_jitter=True)


class EventSourcedStorage:
    """A collection of documents; each change bumps ``version`` and stores one event.

    ``documents`` is where they are kept (``MongoDocuments(db, "users")``, or the in-memory
    ``MemoryDocuments("users")``). Events go to its event store (aggregate type = collection
    name, aggregate id = document id, version = the document's new version) flagged for
    publishing; ``outbox`` publishes them to events.stored at once (otherwise the fleet's
    outbox relay does), and ``bus`` receives them and their mapped domain events.

    ``events``: what the events are called, the field that holds the version and how large
    one may be (``ChangeEvents``; ``<Collection>Created/Updated/Deleted`` by default);
    ``mapper``: the domain events a change yields besides its own; ``cache``: a read-through
    cache (``CachePolicy``; none by default); ``max_retries``: how often a change re-reads and
    decides again when another writer came first, before ConcurrencyConflict.
    """

    def __init__(
        self,
        documents: DocumentStore,
        *,
        events: ChangeEvents | None = None,
        bus: EventBus | None = None,
        mapper: EventMapper | None = None,
        outbox: Outbox | None = None,
        metrics: Metrics | None = None,
        cache: CachePolicy | None = None,
        max_retries: int = 20,
    ) -> None:
        collection_name = documents.name
        events = events or ChangeEvents()
        docs.check_settings(collection_name, max_retries)
        self.collection_name = collection_name
        self.types = storage_event_types(collection_name, events.type_prefix, events.event_types)
        self.version_field = docs.check_version_field(collection_name, events.version_field)
        self._documents = documents
        self._outbox = outbox
        self._bus = bus
        self._mapper = mapper
        self._counters: dict[str, Counter] = {}
        self._metrics = metrics
        self._retries = conflict_retries(max_retries)
        self._max_event_bytes = events.max_event_bytes
        self._cache = (
            DocumentCache(cache.ttl_s, max_entries=cache.max_entries) if cache is not None else None
        )
        self._watcher = documents.watch(self._cache) if self._cache is not None else None

    @property
    def uses_transactions(self) -> bool | None:
        """Whether changes commit in transactions (None until the first call detects it)."""
        return self._documents.transactions

    async def get(self, doc_id: str) -> Document:
        """The current document; NotFound if it never existed, DocumentDeleted if deleted."""
        docs.check_id(self.collection_name, doc_id)
        await self._documents.open()
        caching = self._watcher is not None and await self._watcher.ensure()
        if caching and self._cache is not None and (hit := self._cache.get(doc_id)) is not None:
            return hit
        token = self._cache.token() if self._cache is not None else 0
        doc = self._live(doc_id, await self._load(doc_id))
        if caching and self._cache is not None:
            self._cache.put(doc_id, doc, token)
        return doc

    async def find_one_and_upsert(self, doc: Document, *, client_id: str) -> Document:
        """Create ``doc`` at version 1 (a Created event), or return the existing document.

        Without ``_id`` the document gets a fresh ObjectId string. A deleted document is
        created again, its versions continuing after the tombstone's.
        """
        docs.check_client_id(client_id)
        doc_id, content = docs.check_new(
            self.collection_name, doc, docs.new_id(), self.version_field
        )

        async def decide(stored: Document | None) -> tuple[PlannedChange | None, Document]:
            if stored is not None and not docs.is_deleted(stored):
                return None, docs.public(stored)
            change = self._plan(doc_id, client_id, stored, None, copy.deepcopy(content))
            return change, docs.public(change.replacement)

        return await self._change(doc_id, decide)

    async def find_one_and_update(
        self, doc_id: str, edit: Edit, *, client_id: str
    ) -> tuple[Document, Json]:
        """Apply ``edit`` under optimistic concurrency; return the new document and its diff.

        A concurrent change makes it re-read and apply ``edit`` again, up to
        ``max_retries`` times, then ConcurrencyConflict. No change: no event, diff ``{}``.
        """

        def existing(current: Document | None) -> Document | Awaitable[Document]:
            if current is None:  # update calls with None only when create=True
                raise AssertionError("find_one_and_update never creates; update passed None")
            return edit(current)

        changed = await self.update(doc_id, existing, client_id=client_id)
        return changed.document, changed.diff

    async def update(
        self, doc_id: str, edit: CreateOrEdit, *, client_id: str, create: bool = False
    ) -> Changed:
        """A document edited by a function of its content: ``find_one_and_update`` that may
        create.

        With ``create``, a document that does not exist (or was deleted) is created from what
        ``edit(None)`` returns (its ``_id`` is ``doc_id``; versions continue after a tombstone);
        without it, NotFound / DocumentDeleted. Returns the document, its diff and the event
        stored for it (None when the edit changed nothing).
        """
        docs.check_id(self.collection_name, doc_id)
        docs.check_client_id(client_id)

        async def decide(stored: Document | None) -> tuple[PlannedChange | None, Changed]:
            if create and (stored is None or docs.is_deleted(stored)):
                return self._created(doc_id, client_id, stored, await applied(edit, None))
            current = self._live(doc_id, stored)
            edited = await applied(edit, copy.deepcopy(current))
            after = docs.check_edited(self.collection_name, current, edited, self.version_field)
            before = docs.content_of(current, self.version_field)
            if merge_diff(before, after) == {}:
                return None, Changed(current, {}, None)
            return changed(self._plan(doc_id, client_id, current, before, after))

        return await self._change(doc_id, decide)

    def _created(
        self, doc_id: str, client_id: str, stored: Document | None, edited: object
    ) -> tuple[PlannedChange, Changed]:
        if not isinstance(edited, dict):
            raise InvalidInput(
                f"{self.collection_name} {doc_id}: creating it, the edit returned "
                f"{type(edited).__name__}; return the new document (a dict)."
            )
        new_id, content = docs.check_new(
            self.collection_name, {"_id": doc_id, **edited}, doc_id, self.version_field
        )
        if new_id != doc_id:
            raise InvalidInput(
                f"{self.collection_name} {doc_id}: creating it, the edit returned _id "
                f"{new_id!r}; leave _id out or keep {doc_id!r}."
            )
        return changed(self._plan(doc_id, client_id, stored, None, content))

    async def delete_one(self, doc_id: str, *, client_id: str) -> bool:
        """Delete (a Deleted event, diff null); False if it was already deleted."""
        docs.check_id(self.collection_name, doc_id)
        docs.check_client_id(client_id)

        async def decide(stored: Document | None) -> tuple[PlannedChange | None, bool]:
            if stored is not None and docs.is_deleted(stored):
                return None, False
            current = self._live(doc_id, stored)
            before = docs.content_of(current, self.version_field)
            return self._plan(doc_id, client_id, current, before, None), True

        return await self._change(doc_id, decide)

    async def get_missing_events(self, doc_id: str, *, after_version: int) -> list[Event]:
        """The document's events after ``after_version``, in version order (one per version).

        The hot events and the archive are read as one history (a retention moves the older
        events to the archive: ``storage_domain(..., retention=...)``, ``eventfleet archive``).
        The archive holds a prefix and is filled before the hot copies go, so reading the hot
        part first, then the archive below it, misses nothing and repeats nothing. Events in
        neither: ``HistoryCompacted``, naming where the whole history starts; never a gap.
        """
        docs.check_id(self.collection_name, doc_id)
        docs.check_after_version(after_version)
        await self._documents.open()
        stored = await self._load(doc_id)  # completes a pending event first
        ref = (self.collection_name, doc_id)
        events = await self._documents.events.select(ref, after=after_version)
        head = int(stored[self.version_field]) if stored is not None else None
        first_hot = (events[0].version or 0) if events else None
        starts_late = first_hot is not None and first_hot > after_version + 1
        if starts_late or (first_hot is None and head is not None and head > after_version):
            below = first_hot if first_hot is not None else (head or 0) + 1
            older = await self._documents.archive.select(ref, after=after_version, before=below)
            events = older + events
        if stored is None and not events:
            raise docs.missing(self.collection_name, doc_id)
        whole_from = _whole_from(events, after_version, head)
        if whole_from is not None:
            raise docs.HistoryCompacted(self.collection_name, doc_id, after_version, whole_from)
        return events

    async def recover(self) -> int:
        """Store the pending events of changes interrupted by a crash; return how many."""
        await self._documents.open()
        pending = await self._documents.interrupted()
        for doc_id, event in pending:
            await self._complete(doc_id, event)
        if pending:
            log.info(
                "%s: stored %d events of interrupted changes", self.collection_name, len(pending)
            )
        return len(pending)

    def cache_stats(self) -> CacheStats | None:
        if self._cache is None or self._watcher is None:
            return None
        c = self._cache
        watcher = self._watcher
        return CacheStats(c.hits, c.misses, c.invalidations, len(c), watcher.state, watcher.resumes)

    async def close(self) -> None:
        """Stop following the change feed (the store's client stays the caller's)."""
        if self._watcher is not None:
            await self._watcher.close()

    async def __aenter__(self) -> EventSourcedStorage:
        await self._documents.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _change(self, doc_id: str, decide: _Decide[T]) -> T:
        await self._documents.open()
        seen: list[int | None] = []
        try:
            return await self._retries.call(
                lambda _: self._try_change(doc_id, decide, seen), _Beaten
            )
        except _Beaten:
            raise docs.gave_up(self.collection_name, doc_id, seen) from None

    async def _try_change(self, doc_id: str, decide: _Decide[T], seen: list[int | None]) -> T:
        """Read, decide and commit once (the version read is added to ``seen``); _Beaten when
        another writer committed first."""
        stored = await self._load(doc_id)
        seen.append(None if stored is None else int(stored[self.version_field]))
        change, result = await decide(stored)
        if change is None:
            return result
        outcome = await self._documents.commit(change)
        if outcome == "conflict":
            raise _Beaten(doc_id)
        self._committed(change.event)
        if outcome == "committed":  # else the reader that stored the event publishes it
            published = await publish_change(change.event, outbox=self._outbox, bus=self._bus)
            if isinstance(result, Changed):
                return replace(result, published=published)
        return result

    def _plan(
        self,
        doc_id: str,
        client_id: str,
        previous: Document | None,
        before: Document | None,
        after: Document | None,
    ) -> PlannedChange:
        return plan_change(
            collection=self.collection_name,
            doc_id=doc_id,
            client_id=client_id,
            previous=previous,
            before=before,
            after=after,
            types=self.types,
            mapper=self._mapper,
            max_event_bytes=self._max_event_bytes,
            version_field=self.version_field,
        )

    def _live(self, doc_id: str, stored: Document | None) -> Document:
        if stored is None:
            raise docs.missing(self.collection_name, doc_id)
        if docs.is_deleted(stored):
            raise docs.deleted(self.collection_name, stored, self.version_field)
        return docs.public(stored)

    async def _load(self, doc_id: str) -> Document | None:
        """The stored document; an interrupted change found on the way is completed first."""
        loaded = await self._documents.load(doc_id)
        if loaded.pending is not None:
            await self._complete(doc_id, loaded.pending)
        return loaded.document

    async def _complete(self, doc_id: str, event: Event) -> None:
        if await self._documents.complete(doc_id, event):
            self._forget(doc_id)
            await publish_change(event, outbox=self._outbox, bus=self._bus)

    def _committed(self, event: Event) -> None:
        self._forget(event.aggregate_id)
        if self._metrics is not None:
            operation = str(event.data["operation"])
            if operation not in self._counters:
                self._counters[operation] = self._metrics.storage_changes.labels(
                    self.collection_name, operation
                )
            self._counters[operation].inc()

    def _forget(self, doc_id: str) -> None:
        if self._cache is not None:
            self._cache.invalidate(doc_id)


def _whole_from(events: list[Event], after_version: int, head: int | None) -> int | None:
    """None when ``events`` are every version after ``after_version`` up to the newest; else
    the first version of the unbroken tail that reaches the newest (head + 1: none of it)."""
    newest = head if head is not None else ((events[-1].version or 0) if events else after_version)
    if newest <= after_version:
        return None
    expected = after_version + 1
    whole = True
    for event in events:
        if event.version != expected:
            whole = False
            break
        expected += 1
    if whole and expected == newest + 1:
        return None
    start = newest + 1
    for event in reversed(events):
        if event.version != start - 1:
            break
        start -= 1
    return start
