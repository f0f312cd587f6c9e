"""What an event store may offer beyond its core, each a port of its own, and what the fleet does
where a store offers it not.

The core (``workers.ports.store``: ``EventAppend``, ``EventSelect``, ``EventLookup``, together
``EventStore``) is what every store implements. Each capability here is a runtime-checkable
Protocol: the fleet discovers it with ``isinstance`` on the store it was given (``offered``),
never by the store's class, and falls back as ``CAPABILITIES`` says where it is missing: a
slower path on the core, or a ``CapabilityMissing`` that names the capability and what needs it.
``tests/contracts`` runs each capability's suite on every backend that claims it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from topics.envelope import Event
from topics.errors import ConfigError
from workers.ports.store import AggregateRef, EventQuery, EventStore, SearchPosition


class CapabilityMissing(ConfigError):
    """The event store offers no capability an operation needs (``CAPABILITIES`` names each):
    a store of this backend cannot do it; nothing was read or written. Run the operation on a
    backend that offers it, or leave the feature off."""

    def __init__(self, capability: str, wanted_by: str) -> None:
        entry = CAPABILITIES_BY_NAME[capability]
        super().__init__(
            f"{wanted_by} needs the event store's {capability} ({entry.port.__name__}), which "
            f"this store does not offer; nothing was done. Without it: {entry.fallback}."
        )
        self.capability = capability


@runtime_checkable
class EventScans(Protocol):
    """Whole-type reads: every event, aggregate and count of some aggregate types."""

    def scan(self, aggregate_types: Sequence[str]) -> AsyncIterator[Event]:
        """Every stored event of these aggregate types, by aggregate then version."""
        ...

    async def count(self, aggregate_types: Sequence[str]) -> int:
        """How many events of these aggregate types are stored."""
        ...

    async def versions(self, aggregate_types: Sequence[str]) -> dict[AggregateRef, int]:
        """The newest version of every aggregate of these types."""
        ...


@runtime_checkable
class EventSearch(Protocol):
    """The console's search over every stored event."""

    async def search(
        self, query: EventQuery, *, limit: int, before: SearchPosition | None = None
    ) -> list[Event]:
        """Up to ``limit`` matching events, newest first (occurred_at, then id, descending);
        ``before``: only those after that position in this order (the next page)."""
        ...


@runtime_checkable
class ArchivableEvents(Protocol):
    """An event store events move out of (the hot one) or into (the archive)."""

    async def insert_missing(self, events: Sequence[Event]) -> int:
        """Insert those of ``events`` (versioned) whose ids are not stored yet; how many were.
        Idempotent: a move that stopped half-way is simply done again."""
        ...

    async def remove_through(self, aggregate: AggregateRef, version: int) -> int:
        """Delete the aggregate's events up to ``version``; how many were deleted."""
        ...


@runtime_checkable
class PendingEvents(Protocol):
    """Stored events flagged ``pending_publish``: not yet acknowledged on events.stored."""

    async def pending(self, *, older_than: datetime, limit: int) -> list[Event]:
        """Flagged events that occurred before ``older_than``, by aggregate then version
        (``limit`` 0: all of them)."""
        ...

    async def pending_before(self, aggregate: AggregateRef, version: int) -> list[Event]:
        """Flagged events of one aggregate below ``version``, in version order."""
        ...

    async def clear_pending(self, ids: Sequence[str]) -> None:
        """Remove the flag from these events (they reached events.stored)."""
        ...


@runtime_checkable
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


class ScannableEvents(EventStore, EventScans, Protocol):
    """The core with whole-type reads: what rebuilds, audits and the new-aggregate filter read."""


class StoredEvents(
    EventStore, EventScans, ArchivableEvents, PendingEvents, EventSearch, AtomicAppends, Protocol
):
    """An event store with every capability: what the MongoDB and in-memory adapters offer."""


@dataclass(frozen=True, slots=True)
class Capability:
    """One optional capability: its port, who needs it, and what the fleet does without it."""

    name: str
    port: type
    used_by: str
    fallback: str


CAPABILITIES: tuple[Capability, ...] = (
    Capability(
        "scans",
        EventScans,
        "projection rebuilds (`eventfleet rebuild`), the auditor, the archiver's plan, the "
        "console's domain counts, the new-aggregate filter",
        "those refuse with CapabilityMissing, and the new-aggregate filter is never built, so "
        "the first event of every aggregate reads its head from the store (slower, still right)",
    ),
    Capability(
        "search",
        EventSearch,
        "the console's event search",
        "the search refuses with CapabilityMissing; reads by aggregate are unaffected",
    ),
    Capability(
        "archive",
        ArchivableEvents,
        "retention (`eventfleet archive`) and the archive store",
        "nothing moves: every event stays in the hot store, the archiver refuses with "
        "CapabilityMissing and reads span the hot store alone",
    ),
    Capability(
        "pending",
        PendingEvents,
        "the outbox of sync-mode and storage domains (stored first, then published)",
        "a process running the commands role with a sync or storage domain refuses to start "
        "with CapabilityMissing; async-mode domains (published before they are stored) run as "
        "ever, and the outbox's relay finds nothing to repair",
    ),
    Capability(
        "transactions",
        AtomicAppends,
        "appends across aggregates (`POST /v1/commands/many`, `Repository.save_together`)",
        "those refuse with TransactionsUnsupported (501 `transactions_unsupported`) and store "
        "nothing; single-aggregate appends are unaffected",
    ),
)
"""Every optional capability, in the order the docs list them."""

CAPABILITIES_BY_NAME = {c.name: c for c in CAPABILITIES}


def offered(store: object) -> frozenset[str]:
    """The names of the capabilities ``store`` offers, discovered by ``isinstance``."""
    return frozenset(c.name for c in CAPABILITIES if isinstance(store, c.port))
