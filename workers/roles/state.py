"""Loading an aggregate's state: snapshot + the events after it, replayed. Used by every mode."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from snapshot_rules.domain import Domain
from snapshot_rules.replay import Folded, replay
from topics.envelope import Event, utc_now
from topics.errors import Unavailable
from workers.metrics import Metrics
from workers.ports import EventStore, Snapshot, SnapshotStore

log = logging.getLogger(__name__)


class StateLoader:
    """Folds state from the stores; saves a snapshot when a replayed tail was long."""

    def __init__(
        self,
        events: EventStore,
        snapshots: SnapshotStore,
        metrics: Metrics,
        *,
        tail_threshold: int = 100,
    ) -> None:
        self.events = events
        self.snapshots = snapshots
        self._metrics = metrics
        self._tail_threshold = tail_threshold
        self._background: set[asyncio.Task[Snapshot | None]] = set()

    async def latest(self, domain: Domain, aggregate_id: str, *, save: bool = True) -> Folded:
        """The newest state; if the tail was longer than the threshold, snapshot it in the background."""
        folded, _ = await self.latest_with_tail(domain, aggregate_id, save=save)
        return folded

    async def latest_with_tail(
        self, domain: Domain, aggregate_id: str, *, save: bool = True
    ) -> tuple[Folded, list[Event]]:
        """``latest``, plus the events replayed on top of the snapshot (newest last)."""
        aggregate = (domain.name, aggregate_id)
        started = time.perf_counter()
        snapshot = await self.snapshots.load(aggregate)
        start = Folded(snapshot.state, snapshot.version) if snapshot else Folded(None, 0)
        tail = [domain.upcast(e) for e in await self.events.read(aggregate, after_version=start.version)]
        folded = replay(domain.reducer, tail, start=start)
        self._observe(domain, len(tail), started)
        if save and len(tail) > self._tail_threshold and folded.state is not None:
            self.save_later(domain, aggregate_id, folded, trigger="query")
        return folded, tail

    async def at(
        self,
        domain: Domain,
        aggregate_id: str,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
    ) -> Folded:
        """State at a version or a moment; a snapshot is used only when it is not past the point."""
        aggregate = (domain.name, aggregate_id)
        started = time.perf_counter()
        snapshot = await self.snapshots.load(aggregate)
        usable = snapshot is not None and (version is None or snapshot.version <= version)
        if usable and as_of is not None and snapshot is not None:
            # A snapshot covers as_of only if its last folded event happened by then.
            last = await self.events.read(
                aggregate, after_version=snapshot.version - 1, to_version=snapshot.version
            )
            usable = bool(last) and last[0].occurred_at <= as_of
        start = Folded(snapshot.state, snapshot.version) if usable and snapshot else Folded(None, 0)
        tail = await self.events.read(
            aggregate, after_version=start.version, to_version=version, as_of=as_of
        )
        tail = [domain.upcast(e) for e in _contiguous(tail, start.version)]
        folded = replay(domain.reducer, tail, start=start)
        self._observe(domain, len(tail), started)
        return folded

    def save_later(
        self, domain: Domain, aggregate_id: str, folded: Folded, *, trigger: str
    ) -> None:
        """Save a snapshot without making the caller wait; a failure only costs a later replay."""
        task = asyncio.create_task(self.save(domain, aggregate_id, folded, trigger=trigger))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def save(
        self, domain: Domain, aggregate_id: str, folded: Folded, *, trigger: str
    ) -> Snapshot | None:
        """Store a snapshot of ``folded``; None if a newer one exists or the store is down."""
        if folded.state is None or folded.version == 0:
            return None
        snapshot = Snapshot(domain.name, aggregate_id, folded.version, folded.state, utc_now())
        try:
            saved = await self.snapshots.save(snapshot)
        except Unavailable as e:
            log.warning("snapshot of %s %s not saved: %s", domain.name, aggregate_id, e)
            return None
        if not saved:
            return None
        self._metrics.snapshots_written.labels(domain.name, trigger).inc()
        return snapshot

    async def drain(self) -> None:
        """Wait for background snapshot saves (on shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _observe(self, domain: Domain, length: int, started: float) -> None:
        self._metrics.replay_length.labels(domain.name).observe(length)
        self._metrics.replay_duration.labels(domain.name).observe(time.perf_counter() - started)


def _contiguous(events: list[Event], after: int) -> list[Event]:
    """With ``as_of``, stop at the first gap: a later version cannot precede an earlier one."""
    out = []
    expected = after + 1
    for event in events:
        if event.version != expected:
            break
        out.append(event)
        expected += 1
    return out
