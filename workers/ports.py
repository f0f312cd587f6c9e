"""The narrow ports the runtime talks through; adapters implement them per technology."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from topics.envelope import Event
from topics.errors import ConcurrencyConflict

AggregateRef = tuple[str, str]
"""(aggregate_type, aggregate_id)."""


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

    async def append(
        self, events: Sequence[Event], *, session: Any = None, pending_publish: bool = False
    ) -> None:
        """Insert versioned events in the given order, in one bulk write.

        Every event must carry a version. Per aggregate, (aggregate_type, aggregate_id,
        version) is unique and the event id is unique across the store; the first event
        that breaks either stops the write with AppendConflict. ``session`` lets an
        adapter join a caller's transaction (MongoDB ClientSession). ``pending_publish``
        records that the events still have to reach events.stored (see workers.roles.outbox).
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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State of an aggregate folded up to ``version``."""

    aggregate_type: str
    aggregate_id: str
    version: int
    state: dict[str, Any]
    taken_at: datetime


class SnapshotStore(Protocol):
    """Latest snapshot per aggregate, guarded so it never moves backwards."""

    async def load(self, aggregate: AggregateRef) -> Snapshot | None: ...

    async def load_many(
        self, aggregates: Sequence[AggregateRef]
    ) -> dict[AggregateRef, Snapshot]: ...

    async def save(self, snapshot: Snapshot) -> bool:
        """Store ``snapshot`` unless one of the same or a newer version exists; True if stored."""
        ...


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


@dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of a produce: where Kafka put the record."""

    topic: str
    partition: int
    offset: int
