"""The ports: every dependency role logic touches, as narrow Protocols, and the values they move.

Role logic (``workers.roles``) imports only this module, ``workers.metrics``, ``topics`` and
``snapshot_rules``. Each port has a real adapter (``workers.adapters.<technology>``) and an
in-memory one (``workers.adapters.memory``) that raises the same errors; one contract test
suite runs against both. No driver type appears in a signature here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from snapshot_rules.domain import Domain
from snapshot_rules.projection import LIVE, ViewDoc
from topics.envelope import Event, Metadata, encode, kafka_headers
from topics.errors import ConcurrencyConflict

AggregateRef = tuple[str, str]
"""(aggregate_type, aggregate_id)."""

__all__ = [
    "LIVE",
    "AggregateRef",
    "AppendConflict",
    "CommandMemory",
    "Delivery",
    "EventBus",
    "EventStore",
    "Handler",
    "Head",
    "MarkRequest",
    "MarkResult",
    "Marker",
    "Outgoing",
    "PendingEvents",
    "Producer",
    "Record",
    "Snapshot",
    "SnapshotStore",
    "Subscription",
    "SyncAppender",
    "SyncResult",
    "ViewDoc",
    "ViewStaging",
    "ViewStore",
]


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, as received."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()

    @classmethod
    def of(cls, event: Event) -> Outgoing:
        """An event as a record: keyed by aggregate, correlation ids as headers."""
        return cls(event.key, encode(event), kafka_headers(event))


@dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of a produce: where Kafka put the record."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Head:
    """The newest stored event of an aggregate: its version, id and type."""

    version: int
    event_id: str
    type: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State of an aggregate folded up to ``version``."""

    aggregate_type: str
    aggregate_id: str
    version: int
    state: dict[str, Any]
    taken_at: datetime


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


# --- the event store ------------------------------------------------------------------------


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

    async def read(
        self,
        aggregate: AggregateRef,
        *,
        after_version: int = 0,
        limit: int | None = None,
        to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> list[Event]:
        """Events after ``after_version`` in version order, up to ``to_version`` and ``as_of``."""
        ...

    async def last_versions(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, int]:
        """The newest stored version of each aggregate; aggregates with no events are absent."""
        ...

    async def last_event(self, aggregate: AggregateRef) -> Event | None:
        """The newest stored event of the aggregate, or None."""
        ...

    async def find(self, ids: Sequence[str]) -> dict[str, Event]:
        """The stored events among ``ids``, by id."""
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


class PendingEvents(Protocol):
    """Stored events flagged ``pending_publish``: not yet acknowledged on events.stored."""

    async def pending(self, *, older_than: datetime, limit: int) -> list[Event]:
        """Flagged events that occurred before ``older_than``, by aggregate then version."""
        ...

    async def clear_pending(self, ids: Sequence[str]) -> None:
        """Remove the flag from these events (they reached events.stored)."""
        ...


# --- snapshots and views --------------------------------------------------------------------


class SnapshotStore(Protocol):
    """Latest snapshot per aggregate, guarded so it never moves backwards."""

    async def load(self, aggregate: AggregateRef) -> Snapshot | None: ...

    async def load_many(
        self, aggregates: Sequence[AggregateRef]
    ) -> dict[AggregateRef, Snapshot]: ...

    async def save(self, snapshot: Snapshot) -> bool:
        """Store ``snapshot`` unless one of the same or a newer version exists; True if stored."""
        ...


class ViewStore(Protocol):
    """One projection's view documents, one per aggregate, written with a version guard."""

    @property
    def name(self) -> str:
        """Where the views live (the collection name), for messages."""
        ...

    async def load(self, ref: AggregateRef) -> ViewDoc | None: ...

    async def load_many(self, refs: Sequence[AggregateRef]) -> dict[AggregateRef, ViewDoc]: ...

    async def versions(self) -> dict[AggregateRef, int]:
        """The applied version of every view (for a catch-up pass)."""
        ...

    async def write(self, before: ViewDoc | None, after: ViewDoc) -> bool:
        """Replace ``before`` by ``after`` unless another writer moved it first; True if written.

        ``before=None`` creates the view; it fails (False) if one exists. Otherwise the write
        happens only if the stored document still has ``before``'s version and generation.
        """
        ...

    async def insert_many(self, docs: Sequence[ViewDoc]) -> None:
        """Bulk insert into a store no one else writes (a rebuild's staging store)."""
        ...


class ViewStaging(Protocol):
    """Where a projection rebuild builds its views before swapping them in."""

    async def staging(self, generation: str) -> ViewStore:
        """A new, empty, private view store for one rebuild."""
        ...

    async def swap(self, staging: ViewStore) -> None:
        """Make ``staging`` the live views in one step (the old ones are dropped)."""
        ...

    async def discard(self, staging: ViewStore) -> None:
        """Drop a staging store after a failed rebuild."""
        ...


# --- Kafka ----------------------------------------------------------------------------------


class Producer(Protocol):
    """Produces with acks=all; every call either is acknowledged or raises in bounded time.

    Order is kept per key within one call and across calls of one caller. Raises
    StreamUnavailable when Kafka did not acknowledge.
    """

    async def send(self, topic: str, message: Outgoing, *, partition: int | None = None) -> Delivery:
        ...

    async def send_many(self, topic: str, messages: Sequence[Outgoing]) -> list[Delivery]:
        """Produce all, keeping their order per key, and wait for every acknowledgement."""
        ...


# --- Redis ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkRequest:
    """One check-and-mark: may ``event_type`` follow the marked type, given ``allowed``?"""

    aggregate_key: str
    event_type: str
    event_id: str
    allowed: Sequence[str]
    command_id: str | None = None
    fallback: str = "?"  # the last stored event type, "-" (no events), or "?" (not looked up)

    @property
    def mark(self) -> str:
        return f"{self.event_type}|{self.event_id}"


@dataclass(frozen=True, slots=True)
class MarkResult:
    """``status``: marked, rejected, missing (look in the store) or duplicate (command seen)."""

    status: str
    value: str  # marked: previous mark ('' if none); rejected: current type; duplicate: answer


class Marker(Protocol):
    """The fast early answer: an aggregate's marked latest event type, checked and set atomically.

    Of two concurrent conflicting requests on one key exactly one is marked. The marker is a
    cache: a missing mark means "look in the store". Raises MarkerUnavailable.
    """

    async def check_and_mark(self, request: MarkRequest) -> MarkResult: ...

    async def restore(self, request: MarkRequest, previous: str) -> None:
        """Undo our mark (only if it is still ours) and forget the pending command."""
        ...

    async def ping(self) -> bool: ...


class CommandMemory(Protocol):
    """Remembers the first answer to each command id, so a repeated request gets the same one."""

    async def claim_command(self, aggregate_key: str, command_id: str, event_id: str) -> str | None:
        """Claim a command id for a new request; returns the earlier answer if there is one."""
        ...

    async def answer(self, aggregate_key: str, command_id: str) -> str | None:
        """The remembered answer (or ``pending|<event id>``), or None."""
        ...

    async def remember_answer(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        ...

    async def forget_command(self, aggregate_key: str, command_id: str, event_id: str) -> None:
        """Release a claimed command id whose request failed (only our own pending claim)."""
        ...


# --- sync mode ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The stored event (with its version) and whether Kafka acknowledged it yet."""

    event: Event
    # False: stored, but Kafka did not acknowledge; the outbox relay will publish it.
    published: bool


class SyncAppender(Protocol):
    """Sync mode: validate on the replayed state, store at the next version, then publish."""

    async def append(
        self,
        domain: Domain,
        aggregate_id: str,
        event_type: str,
        data: Mapping[str, Any],
        metadata: Metadata,
    ) -> SyncResult:
        """The stored event; raises (storing nothing) when the state or the input refuses it."""
        ...


# --- buses ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    """A handle to cancel one bus subscription."""

    cancel: Callable[[], Awaitable[None]]


Handler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    """Publishes stored events to subscribers by event type (``"*"``: every type)."""

    async def publish(self, event: Event) -> None: ...

    async def subscribe(self, event_type: str, handler: Handler) -> Subscription: ...

    async def close(self) -> None: ...
