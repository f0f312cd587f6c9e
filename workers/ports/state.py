"""What is folded from the events: snapshots and their ladder, the snapshot rule's memory, and
the projections' views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from snapshot_rules.projection import ViewDoc
from topics.jsonvalue import JsonObject
from workers.ports.store import AggregateRef


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State of an aggregate folded up to ``version``."""

    aggregate_type: str
    aggregate_id: str
    version: int
    state: JsonObject
    taken_at: datetime


class SnapshotLadder(Protocol):
    """Dated snapshots kept at intervals along an aggregate's history (rungs), so a state at a
    past version or moment replays from the nearest rung below it, not from the start."""

    async def add(self, rung: Snapshot, *, last_at: datetime) -> None:
        """Keep ``rung``; ``last_at`` is when its last folded event occurred (idempotent per
        aggregate and version)."""
        ...

    async def below(
        self, aggregate: AggregateRef, *, version: int | None = None, as_of: datetime | None = None
    ) -> Snapshot | None:
        """The newest rung at or below ``version`` whose last event occurred by ``as_of``."""
        ...

    async def versions(self, aggregate: AggregateRef) -> list[int]:
        """The versions of the aggregate's rungs, ascending (few: the ladder is thinned)."""
        ...

    async def remove(self, aggregate: AggregateRef, versions: Sequence[int]) -> None:
        """Drop these rungs of the aggregate (absent ones are ignored: idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class RuleState:
    """The snapshot rule's memory of one aggregate: its last snapshot's version and the time of
    the event that snapshot ends with (None: not known)."""

    version: int
    event_time: datetime | None = None


class RuleStates(Protocol):
    """Per-aggregate snapshot-rule state, kept where the snapshotter runs.

    In the fleet it is a Faust table whose compacted changelog topic follows each partition
    of events.stored to its owner across restarts and rebalances, so evaluating ``every(n)``
    or ``interval(s)`` reads no database. ``get`` answers from memory; ``put`` is applied at
    once and made durable in the background (a lost update costs an early snapshot, never a
    wrong one: snapshots are guarded by version). A state may be forgotten (bounded memory);
    the snapshotter then reads the aggregate's snapshot document once.
    """

    def get(self, aggregate: AggregateRef) -> RuleState | None: ...

    def put(self, aggregate: AggregateRef, state: RuleState) -> None: ...


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
