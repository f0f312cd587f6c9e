"""The event store's core: the ordered history of every aggregate, as three small ports every
store implements (``EventStore``), the sync-mode appender that writes to it, and the values they
move. What a store may offer beyond the core is in ``workers.ports.capabilities``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class EventAppend(Protocol):
    """The core's write: versioned events in order, unique by id and by aggregate version."""

    async def append(self, events: Sequence[Event], *, pending_publish: bool = False) -> None:
        """Insert versioned events in the given order, in one bulk write.

        Every event must carry a version. Per aggregate, (aggregate_type, aggregate_id,
        version) is unique and the event id is unique across the store; the first event
        that breaks either stops the write with AppendConflict (events before it are
        stored, none after it). ``pending_publish`` records that the events still have to
        reach events.stored (kept by a store that offers ``PendingEvents``; one that does not
        may ignore it). StoreUnavailable when the store does not answer.
        """
        ...


@runtime_checkable
class EventSelect(Protocol):
    """The core's read: one aggregate's events between two versions, either way, a page of them."""

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


@runtime_checkable
class EventLookup(Protocol):
    """What the appender cannot do without: each aggregate's newest event (the version to
    write next), and the events stored under given ids (a redelivered command is no new one)."""

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


@runtime_checkable
class EventStore(EventAppend, EventSelect, EventLookup, Protocol):
    """The core every event store implements: the durable, ordered history of every aggregate.

    pyeventsourcing's recorder contract (``insert_events``, ``select_events``) and the lookups
    the appender needs; everything else a store may offer is a capability of its own
    (``workers.ports.capabilities``), which the fleet discovers and does without.
    """


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
