"""The storage's port: a collection of version-checked documents whose changes commit with their
events.

``EventSourcedStorage`` plans each change (the new document and the one event that records it),
retries on conflicts, caches, and publishes; a ``DocumentStore`` makes a planned change durable
together with its event, one way or another:

- in one transaction (the document write and the event insert commit together or not at all);
- or, where the store runs no transactions, by an intent: the version-checked document write
  also keeps the event inside the document (``_pending_event``, one atomic write), then the
  event is stored and the intent cleared. A crash in between leaves the intent; whoever loads
  that document next (or ``interrupted``) completes it.

``workers.adapters.mongo.MongoDocuments`` is the real one, ``workers.adapters.memory.
MemoryDocuments`` its in-memory twin; ``tests/contracts/test_document_store.py`` holds both to
this contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from topics.envelope import Event
from topics.jsonvalue import Json, JsonObject
from workers.ports import EventStore

Document = JsonObject

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
    session_id: Mapping[str, Json] | None
    """The transaction's logical session id, where the store has one (None on the intent path)."""


FaultHook = Callable[[FaultPoint], None]


def no_fault(point: FaultPoint) -> None:
    """The fault hook of a store nobody crashes."""
    return None


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One version step of one document: the version it replaces, the new document, its event."""

    doc_id: str
    expected_version: int | None
    """None: no document with this id exists yet."""
    replacement: Document
    event: Event
    version_field: str = "version"
    """The field of the document that holds its version (the storage's ``version_field``): the
    store's version check reads it."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """A stored document (None: never written) and the event of its interrupted change, if any."""

    document: Document | None
    pending: Event | None = None


WatchState = Literal["off", "watching", "unsupported"]


class Invalidations(Protocol):
    """What a change feed tells a cache: one document changed, or anything may have.

    Plain calls that never raise and never wait (the feed makes them between two changes).
    After either, no copy the call concerns is served, and a read that started before it
    cannot put one back (``tests/contracts/test_invalidations.py``).
    """

    def invalidate(self, key: str) -> None:
        """Document ``key`` changed (a key never cached is harmless)."""
        ...

    def clear(self) -> None:
        """Anything may have changed: forget every copy."""
        ...


class ChangeFeed(Protocol):
    """Follows every change to the collection, from any writer, and invalidates a cache.

    Each change of a document invalidates its key, and no other; a change the feed cannot
    place (a drop, a rename) clears the cache. ``tests/contracts/test_change_feed.py`` holds
    the memory collection and MongoDB's change stream to it.
    """

    state: WatchState
    resumes: int
    """Times the feed was resumed where it stopped (idle timeouts, network errors)."""

    async def ensure(self) -> bool:
        """Start following if not yet, first clearing what was cached before; True if caching is
        safe now (following, or TTL only). A store that does not answer is no error: False (do
        not cache), and the feed stays off, to be asked again."""
        ...

    async def close(self) -> None:
        """Stop following and clear the cache: nothing reaches it after (it may follow again)."""
        ...


class DocumentStore(Protocol):
    """One collection of documents ``{"_id", "version", **content}`` beside the fleet's events.

    ``commit`` writes a planned change only if the document is still at ``expected_version``
    (``conflict`` otherwise, nothing written) and stores its event with it: the event is never
    stored without its change, and once ``complete`` ran no change is without its event.
    Storing an event is idempotent by event id. StoreUnavailable (StoreOutcomeUnknown for a
    write) when the store does not answer.
    """

    @property
    def name(self) -> str:
        """The collection's name: the aggregate type of its events."""
        ...

    @property
    def events(self) -> EventStore:
        """The event store the changes' events go to."""
        ...

    @property
    def archive(self) -> EventStore:
        """Where a retention moves the collection's older events (the fleet's archive,
        ``events_archive``: ``storage_domain(..., retention=...)`` and ``eventfleet archive``);
        the storage reads it and ``events`` as one history."""
        ...

    @property
    def transactions(self) -> bool | None:
        """Whether changes commit in transactions (None until ``open`` decided it)."""
        ...

    async def open(self) -> None:
        """Get ready (indexes; transactions or intents); idempotent, cheap once done."""
        ...

    async def load(self, doc_id: str) -> Loaded:
        """The stored document, its intent taken out and returned as ``pending``."""
        ...

    async def interrupted(self) -> list[tuple[str, Event]]:
        """Every document holding an intent, with its pending event."""
        ...

    async def commit(self, change: PlannedChange) -> Outcome:
        """Write the change and its event together, if the document is still at its version."""
        ...

    async def complete(self, doc_id: str, event: Event) -> bool:
        """Store an intent's event and clear the intent (both idempotent).

        True if this call stored the event, so it is the one to publish it.
        """
        ...

    def watch(self, cache: Invalidations) -> ChangeFeed:
        """A change feed that keeps ``cache`` correct (started by its ``ensure``)."""
        ...
