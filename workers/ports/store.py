"""The event store's ports: the ordered history of every aggregate, its search, its moves and
publish flags, and the sync-mode appender that writes to it; the values they move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from snapshot_rules.domain import Domain
from topics.envelope import Event, Metadata
from topics.errors import ConcurrencyConflict, EventfleetError
from topics.jsonvalue import Json

AggregateRef = tuple[str, str]
"""(aggregate_type, aggregate_id)."""


@dataclass(frozen=True, slots=True)
class Head:
    """The newest stored event of an aggregate: its version, id and type."""

    version: int
    event_id: str
    type: str


class AppendConflict(ConcurrencyConflict):
    """An ordered bulk append stopped at ``failed``: its id or its version is already taken.

    ``inserted`` events before it were stored; none after it were. ``id_taken`` tells a
    redelivered event (harmless) from a version another writer took (re-read and renumber).
    """

    def __init__(self, message: str, *, inserted: int, failed: Event, id_taken: bool) -> None:
        super().__init__(message)
        self.inserted = inserted
        self.failed = failed
        self.id_taken = id_taken


class EventStore(Protocol):
    """The durable, ordered history of every aggregate."""

    async def append(self, events: Sequence[Event], *, pending_publish: bool = False) -> None:
        """Insert versioned events in the given order, in one bulk write.

        Every event must carry a version. Per aggregate, (aggregate_type, aggregate_id,
        version) is unique and the event id is unique across the store; the first event
        that breaks either stops the write with AppendConflict (events before it are
        stored, none after it). ``pending_publish`` records that the events still have to
        reach events.stored (see ``PendingEvents``). StoreUnavailable when the store does
        not answer.
        """
        ...

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
        """The aggregate's events with versions above ``after`` and below ``before`` (both
        exclusive; None: unbounded), in version order, newest first with ``desc``; at most
        ``limit`` of them (None: all), the first in that order: a page read from either end
        never reads what it skips.

        The next page: ``after=<the last event's version>`` ascending, ``before=<the last
        event's version>`` descending. The newest event: ``desc=True, limit=1``; the event at
        version v: ``after=v - 1, before=v + 1``.

        Two filters, applied by the store (what they drop is never sent): ``types``, only
        events of these types; ``as_of``, only events that occurred by then (naive: UTC).

        ValueError for a ``limit`` below 1 or not an int, and for ``types`` given as one
        string. StoreUnavailable when the store does not answer.

        One read where there were three (``read``, ``read_back``, ``last_event``): where to
        read is position (``after``, ``before``, ``desc``, ``limit``, as pyeventsourcing's
        ``select_events``); the two filters stay in the store because their callers cannot do
        without them cheaply: a typed page (the console's, the HTTP API's) would read every
        event of other types it skips, and a state as of a moment every event after it.
        """
        ...

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        """The newest stored event of each aggregate (version, id, type); absent if none.

        One indexed lookup each: the newest version of an aggregate, and whether it has any
        event at all, are asked here.
        """
        ...

    async def find(
        self, ids: Sequence[str], *, aggregates: Sequence[AggregateRef] = ()
    ) -> dict[str, Event]:
        """The stored events among ``ids``, by id.

        ``aggregates``: the aggregates the ids belong to, where the caller knows them; a store
        sharded by aggregate then asks only their shards instead of every shard.
        """
        ...

    def scan(self, aggregate_types: Sequence[str]) -> AsyncIterator[Event]:
        """Every stored event of these aggregate types, by aggregate then version."""
        ...

    async def count(self, aggregate_types: Sequence[str]) -> int:
        """How many events of these aggregate types are stored."""
        ...

    async def versions(self, aggregate_types: Sequence[str]) -> dict[AggregateRef, int]:
        """The newest version of every aggregate of these types."""
        ...


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What an operator searches the store for: every field given must match."""

    aggregate_type: str | None = None
    id_prefix: str | None = None
    """Aggregate ids starting with this text."""
    event_type: str | None = None
    since: datetime | None = None
    """Occurred at or after this moment (UTC)."""
    until: datetime | None = None
    """Occurred before this moment (UTC)."""
    command_id: str | None = None
    correlation_id: str | None = None


SearchPosition = tuple[datetime, str]
"""Where a search page ended: the last event's (occurred_at, id)."""


class EventSearch(Protocol):
    """The console's search over every stored event."""

    async def search(
        self, query: EventQuery, *, limit: int, before: SearchPosition | None = None
    ) -> list[Event]:
        """Up to ``limit`` matching events, newest first (occurred_at, then id, descending);
        ``before``: only those after that position in this order (the next page)."""
        ...


class ArchivableEvents(EventStore, Protocol):
    """An event store events move out of (the hot one) or into (the archive)."""

    async def insert_missing(self, events: Sequence[Event]) -> int:
        """Insert those of ``events`` (versioned) whose ids are not stored yet; how many were.
        Idempotent: a move that stopped half-way is simply done again."""
        ...

    async def remove_through(self, aggregate: AggregateRef, version: int) -> int:
        """Delete the aggregate's events up to ``version``; how many were deleted."""
        ...


class PendingEvents(Protocol):
    """Stored events flagged ``pending_publish``: not yet acknowledged on events.stored."""

    async def pending(self, *, older_than: datetime, limit: int) -> list[Event]:
        """Flagged events that occurred before ``older_than``, by aggregate then version."""
        ...

    async def pending_before(self, aggregate: AggregateRef, version: int) -> list[Event]:
        """Flagged events of one aggregate below ``version``, in version order."""
        ...

    async def clear_pending(self, ids: Sequence[str]) -> None:
        """Remove the flag from these events (they reached events.stored)."""
        ...


class AtomicAppends(Protocol):
    """Events of several aggregates stored together: all of them, or none (one transaction)."""

    async def append_atomically(
        self, events: Sequence[Event], *, pending_publish: bool = False
    ) -> None:
        """Insert versioned events of one or more aggregates, all or none, in one transaction.

        The uniqueness of ``append`` holds (an id across the store, a version per aggregate);
        an event that breaks it aborts the whole write with AppendConflict: ``inserted`` is 0
        (nothing is stored), ``failed`` the event whose id (``id_taken``) or version was taken,
        or the first event when a concurrent writer held one of the same versions. No reader
        sees any of the events before all of them are stored. TransactionsUnsupported, before
        anything is sent, when the store runs none (a standalone mongod); StoreUnavailable
        when it does not answer before the commit (nothing stored); StoreOutcomeUnknown when
        the commit went unanswered and the events are not found stored (they may be later).
        """
        ...


class StoredEvents(ArchivableEvents, PendingEvents, EventSearch, AtomicAppends, Protocol):
    """The hot event store as every store adapter implements it: the port, its moves, its
    publish flags, its search and its appends across aggregates."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The stored event (with its version) and whether Kafka acknowledged it yet."""

    event: Event
    # False: stored, but Kafka did not acknowledge; the outbox relay will publish it.
    published: bool
    # True: the event id was already stored (a retry of a command that was applied).
    duplicate: bool = False


class SyncAppender(Protocol):
    """Sync mode: validate on the replayed state, store at the next version, then publish."""

    async def append(
        self,
        domain: Domain,
        aggregate_id: str,
        event_type: str,
        data: Mapping[str, Json],
        metadata: Metadata,
        *,
        event_id: str | None = None,
        data_checked: bool = False,
        expected_version: int | None = None,
    ) -> SyncResult:
        """The stored event; raises (storing nothing) when the state or the input refuses it.

        ``event_id`` (derived from a command id) makes a retry safe: if that id is already
        stored, the stored event is returned with ``duplicate=True``. StoreOutcomeUnknown
        when the store did not answer the write (it may have been applied).

        ``expected_version`` (None: none): store the event only as version
        ``expected_version + 1``; WrongExpectedVersion (naming the version found) otherwise.
        It is checked in the optimistic write itself: the aggregate is loaded, its version
        must equal the expectation, and the insert at the next version fails on the unique
        (aggregate, version) index if another writer took it meanwhile, so the reload finds
        the expectation stale. Of concurrent appends with one expectation one is stored.
        """
        ...

    async def append_many(
        self, items: Sequence[AppendItem], metadata: Metadata, *, data_checked: bool = False
    ) -> SyncResults:
        """Every item's event stored together, each at its aggregate's next version, in one
        transaction (``AtomicAppends``), then published in one produce; or none of them.

        One item per aggregate (ValueError for two, or for an item of a domain that is not
        sync). Each item is validated on its aggregate's state and its own
        ``expected_version``, as ``append``; the first item refused refuses the whole request
        with RefusedItem (its index, and the error ``append`` would raise), storing nothing.
        When another writer stored one of the versions first, every aggregate is loaded and
        decided again (ConcurrencyConflict once other writers kept winning). Event ids given
        (derived from a command id) make a retry safe: all already stored is answered with
        ``duplicate=True``; some of them stored is CommandReused (the command id was used for
        other aggregates). StoreUnavailable, StoreOutcomeUnknown and TransactionsUnsupported
        as the store raises them.
        """
        ...


@dataclass(frozen=True, slots=True)
class AppendItem:
    """One aggregate's part of a multi-aggregate append."""

    domain: Domain
    aggregate_id: str
    event_type: str
    data: Mapping[str, Json]
    event_id: str | None = None
    """Derived from the request's command id (and the aggregate): a retry finds it stored."""
    expected_version: int | None = None
    """Append only at this version of the aggregate (0: a new one); None: at whatever it is."""

    @property
    def ref(self) -> AggregateRef:
        return (self.domain.name, self.aggregate_id)


@dataclass(frozen=True, slots=True)
class SyncResults:
    """The stored events of a multi-aggregate append, in its items' order."""

    events: tuple[Event, ...]
    published: bool
    """False: stored, but Kafka did not acknowledge them; the outbox relay will publish them."""
    duplicate: bool = False
    """True: every event id was already stored (a retry of a request that was applied)."""


class RefusedItem(EventfleetError):
    """One item refused a multi-aggregate append, so nothing of it was stored: ``index`` is its
    place in the request, ``error`` what refused it (the error a single append would raise)."""

    def __init__(self, index: int, error: EventfleetError) -> None:
        super().__init__(f"item {index}: {error}")
        self.index = index
        self.error = error
