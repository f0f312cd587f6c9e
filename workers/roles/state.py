"""Loading an aggregate's state: snapshot + the events after it, replayed. Used by every mode.

A latest-state query or a sync validation saves the snapshot it computed, so the next one
replays less. Doing that on every read would turn a hot aggregate's reads into writes, so
``QuerySnapshots`` says when: only when the replayed tail is not empty, and at most once per
aggregate per ``interval_s`` (judged by the stored snapshot's ``taken_at``, so it holds across
processes; within one process a save already in flight is not repeated), unless the tail is
longer than ``long_tail``. The default (1 s, 100 events) bounds the snapshot writes reads cause
to one per aggregate per second, while a query never replays more than a second's worth of an
aggregate's events plus at most ``long_tail``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from snapshot_rules.domain import Domain
from snapshot_rules.ladder import kept_rungs
from snapshot_rules.replay import Folded, replay
from topics.envelope import Event, utc_now
from topics.errors import NotFound, StoreError, Unavailable, Unstorable
from topics.jsonvalue import JsonObject
from workers.metrics import Metrics
from workers.ports import AggregateRef, EventStore, Snapshot, SnapshotLadder, SnapshotStore
from workers.roles.history import check_resumable, check_whole

if TYPE_CHECKING:
    from prometheus_client import Histogram  # the metric children it caches

RUNG_CACHE_SIZE = 100_000
"""Aggregates whose newest rung a process remembers."""

log = logging.getLogger(__name__)


class VersionNotFound(NotFound):
    """A version past the aggregate's newest was asked for; ``newest`` is the newest stored."""

    code = "version_not_found"

    def __init__(self, message: str, *, newest: int) -> None:
        super().__init__(message)
        self.newest = newest

    def details(self) -> JsonObject:
        return {"newest_version": self.newest}


@dataclass(frozen=True, slots=True)
class QuerySnapshots:
    """When a state computed for a query or a sync validation is saved as the snapshot."""

    interval_s: float = 1.0
    long_tail: int = 100

    def wants(self, *, tail: int, snapshot: Snapshot | None, now: datetime) -> bool:
        if tail == 0:
            return False  # the snapshot is the state already
        if snapshot is None or tail > self.long_tail:
            return True
        return (now - snapshot.taken_at).total_seconds() >= self.interval_s


class StateLoader:
    """Folds state from the stores; saves the snapshots queries and validations compute."""

    def __init__(
        self,
        events: EventStore,
        snapshots: SnapshotStore,
        metrics: Metrics,
        *,
        tail_threshold: int = 100,
        query_interval_s: float = 1.0,
        ladder: SnapshotLadder | None = None,
        ladder_step: int = 1000,
    ) -> None:
        self.events = events
        self.snapshots = snapshots
        self.ladder = ladder if ladder_step > 0 else None
        self._ladder_step = ladder_step
        self._metrics = metrics
        self._children: dict[str, tuple[Histogram, Histogram]] = {}
        self.policy = QuerySnapshots(interval_s=query_interval_s, long_tail=tail_threshold)
        self._background: set[asyncio.Task[Snapshot | None]] = set()
        self._saving: set[AggregateRef] = set()
        # Aggregates whose snapshot the store cannot take (over 16 MB, ...): reads stop trying.
        self._unsavable: set[AggregateRef] = set()
        self._newest_rung: OrderedDict[AggregateRef, int] = OrderedDict()

    async def latest(
        self, domain: Domain, aggregate_id: str, *, save: bool = True, trigger: str = "query"
    ) -> Folded:
        """The newest state; saved as the snapshot in the background when the policy says so."""
        folded, _ = await self.latest_with_tail(domain, aggregate_id, save=save, trigger=trigger)
        return folded

    async def latest_with_tail(
        self, domain: Domain, aggregate_id: str, *, save: bool = True, trigger: str = "query"
    ) -> tuple[Folded, list[Event]]:
        """``latest``, plus the events replayed on top of the snapshot (newest last).

        HistoryGone rather than a fold across versions stored nowhere any more (an archive
        lost with no snapshot covering it): one comparison."""
        aggregate = (domain.name, aggregate_id)
        started = time.perf_counter()
        snapshot = await self.snapshots.load(aggregate)
        start = Folded(snapshot.state, snapshot.version) if snapshot else Folded(None, 0)
        stored = await self.events.select(aggregate, after=start.version)
        check_whole(stored, aggregate, start.version)
        tail = [domain.upcast(e) for e in stored]
        folded = replay(domain.reducer, tail, start=start)
        self._observe(domain, len(tail), started)
        if (
            save
            and folded.state is not None
            and aggregate not in self._saving
            and aggregate not in self._unsavable
            and self.policy.wants(tail=len(tail), snapshot=snapshot, now=utc_now())
        ):
            self.save_later(domain, aggregate_id, folded, trigger=trigger)
        return folded, tail

    async def at(
        self,
        domain: Domain,
        aggregate_id: str,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
    ) -> Folded:
        """State at a version or a moment; a snapshot is used only when it is not past the point.

        Never folded across a hole: HistoryGone when a version the point needs is stored nowhere
        any more. With ``as_of`` the events are read to the first version past the moment (a
        later version may be stamped earlier: the fold stops there), and the version after that
        is read once, unfiltered, to tell a version that came later from one that is gone."""
        aggregate = (domain.name, aggregate_id)
        started = time.perf_counter()
        start = await self._start_at(aggregate, version=version, as_of=as_of)
        tail = await self.events.select(
            aggregate,
            after=start.version,
            before=None if version is None else version + 1,
            as_of=as_of,
        )
        kept = _contiguous(tail, start.version)
        reached = (kept[-1].version or 0) if kept else start.version
        if (
            len(kept) < len(tail)
            or as_of is not None
            or (version is not None and reached < version)
        ):
            await check_resumable(self.events, aggregate, reached)  # cut short: by time, or a hole?
        tail = [domain.upcast(e) for e in kept]
        folded = replay(domain.reducer, tail, start=start)
        self._observe(domain, len(tail), started)
        return folded

    async def _start_at(
        self, aggregate: AggregateRef, *, version: int | None, as_of: datetime | None
    ) -> Folded:
        """Where a fold to a point starts: the snapshot, when it is not past the point, or a rung
        of the ladder nearer to it; else nothing (version 0)."""
        snapshot = await self.snapshots.load(aggregate)
        usable = snapshot is not None and (version is None or snapshot.version <= version)
        if usable and as_of is not None and snapshot is not None:
            # A snapshot covers as_of only if its last folded event happened by then.
            last = await self.events.select(
                aggregate, after=snapshot.version - 1, before=snapshot.version + 1
            )
            usable = bool(last) and last[0].occurred_at <= as_of
        start = Folded(snapshot.state, snapshot.version) if usable and snapshot else Folded(None, 0)
        if self.ladder is not None and (version is not None or as_of is not None):
            rung = await self._rung_below(aggregate, version=version, as_of=as_of)
            if rung is not None and rung.version > start.version:  # nearer than the snapshot
                start = Folded(rung.state, rung.version)
        return start

    async def exactly_at(
        self,
        domain: Domain,
        aggregate_id: str,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
    ) -> Folded:
        """``at`` for a reader who named a version: one past the newest raises VersionNotFound.

        ``at`` answers the newest state for such a version, which reads as if that version
        existed; a caller that asked for version 99 of a 4-event aggregate is told so instead.
        """
        folded = await self.at(domain, aggregate_id, version=version, as_of=as_of)
        if version is None or folded.version >= version:
            return folded
        aggregate = (domain.name, aggregate_id)
        head = (await self.events.heads([aggregate])).get(aggregate)
        newest = 0 if head is None else head.version
        if newest == 0 or version <= newest:
            return folded  # no events at all (the caller's not-found), or cut short by as_of
        raise VersionNotFound(
            f"{domain.name} {aggregate_id} has {newest} events, so there is no version "
            f"{version}; ask at_version=1 to {newest}, or leave at_version out for the newest.",
            newest=newest,
        )

    def save_later(
        self, domain: Domain, aggregate_id: str, folded: Folded, *, trigger: str
    ) -> None:
        """Save a snapshot without making the caller wait; a failure only costs a later replay."""
        aggregate = (domain.name, aggregate_id)
        self._saving.add(aggregate)
        task = asyncio.create_task(self._save_quietly(domain, aggregate_id, folded, trigger))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _save_quietly(
        self, domain: Domain, aggregate_id: str, folded: Folded, trigger: str
    ) -> Snapshot | None:
        """A background save: a state the store cannot take is counted once and not retried."""
        aggregate = (domain.name, aggregate_id)
        try:
            return await self.save(domain, aggregate_id, folded, trigger=trigger)
        except (Unstorable, StoreError) as e:
            self._unsavable.add(aggregate)
            self._metrics.aggregates_parked.labels(trigger, "snapshot_failed").inc()
            log.error("snapshots of %s %s on %s stop: %s", aggregate[0], aggregate[1], trigger, e)
            return None
        finally:
            self._saving.discard(aggregate)

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
        await self._climb(snapshot)
        return snapshot

    async def _rung_below(
        self, aggregate: AggregateRef, *, version: int | None, as_of: datetime | None
    ) -> Snapshot | None:
        assert self.ladder is not None
        try:
            return await self.ladder.below(aggregate, version=version, as_of=as_of)
        except (Unavailable, StoreError) as e:  # the ladder only saves time: replay further
            log.warning("snapshot ladder of %s %s not read: %s", aggregate[0], aggregate[1], e)
            return None

    async def _climb(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` as a rung when it is ``ladder_step`` versions past the newest rung,
        then thin the older rungs to increasing distances (``snapshot_rules.ladder``)."""
        if self.ladder is None:
            return
        aggregate = (snapshot.aggregate_type, snapshot.aggregate_id)
        known = self._newest_rung.get(aggregate)
        if known is not None and snapshot.version - known < self._ladder_step:
            return  # remembered: no rung is due yet, nothing to read
        try:
            newest = await self.ladder.below(aggregate)
            if newest is not None and snapshot.version - newest.version < self._ladder_step:
                self._remember_rung(aggregate, newest.version)
                return
            last = await self.events.select(
                aggregate, after=snapshot.version - 1, before=snapshot.version + 1
            )
            if last:
                await self.ladder.add(snapshot, last_at=last[0].occurred_at)
                self._remember_rung(aggregate, snapshot.version)
                versions = await self.ladder.versions(aggregate)
                kept = set(kept_rungs(versions, step=self._ladder_step))
                await self.ladder.remove(aggregate, [v for v in versions if v not in kept])
        except (Unavailable, StoreError) as e:
            log.warning("rung of %s %s not kept: %s", aggregate[0], aggregate[1], e)

    def _remember_rung(self, aggregate: AggregateRef, version: int) -> None:
        """The newest rung's version, so most saves decide without reading the ladder. Another
        process may have added a newer rung: then the next save that seems due reads it."""
        rungs = self._newest_rung
        rungs[aggregate] = version
        rungs.move_to_end(aggregate)
        while len(rungs) > RUNG_CACHE_SIZE:
            rungs.popitem(last=False)

    async def drain(self) -> None:
        """Wait for background snapshot saves (on shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _observe(self, domain: Domain, length: int, started: float) -> None:
        children = self._children.get(domain.name)
        if children is None:  # labels() is slow: its children are cached per domain
            children = self._children[domain.name] = (
                self._metrics.replay_length.labels(domain.name),
                self._metrics.replay_duration.labels(domain.name),
            )
        children[0].observe(length)
        children[1].observe(time.perf_counter() - started)


def _contiguous(events: list[Event], after: int) -> list[Event]:
    """Up to the first gap: with ``as_of``, a later version cannot precede an earlier one."""
    out = []
    expected = after + 1
    for event in events:
        if event.version != expected:
            break
        out.append(event)
        expected += 1
    return out
