"""The snapshotter's logic: evaluate each domain's rule per stored event, rebuild in the background.

The rule's inputs (events since the last snapshot, its time) derive from the stored
event's version and the aggregate's snapshot document, so they survive restarts and
rebalances without a counter of their own. Rebuilds run with bounded concurrency and
are coalesced per aggregate: a trigger arriving during a rebuild causes one more run.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from snapshot_rules.domain import Domains
from snapshot_rules.rules import Progress
from topics.envelope import Event
from topics.errors import ReplayFailed, StoreError, Unstorable
from workers.metrics import Metrics
from workers.ports import AggregateRef, Outgoing, Record
from workers.roles.deadletter import DeadLetter, DeadLetters
from workers.roles.retry import until_done
from workers.roles.state import StateLoader

KNOWN_CACHE_SIZE = 100_000
log = logging.getLogger(__name__)


class Snapshotter:
    """Decides when to snapshot and keeps snapshots up to date."""

    def __init__(
        self,
        *,
        loader: StateLoader,
        domains: Domains,
        metrics: Metrics,
        concurrency: int,
        dead_letters: DeadLetters | None = None,
        stored_topic: str = "events.stored",
    ) -> None:
        self._loader = loader
        self._domains = domains
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._dead_letters = dead_letters
        self._stored_topic = stored_topic
        # Aggregates whose state the reducer or the store cannot take: skipped until restart.
        self._parked: set[AggregateRef] = set()
        self._last: dict[AggregateRef, Event] = {}
        # Snapshot version and time per aggregate, as far as this process knows.
        self._known: OrderedDict[AggregateRef, tuple[int, datetime | None]] = OrderedDict()
        self._running: dict[AggregateRef, asyncio.Task[None]] = {}
        self._again: set[AggregateRef] = set()

    async def handle(self, events: Sequence[Event]) -> list[asyncio.Task[None]]:
        """Evaluate the rules; return the rebuilds this batch triggered (await them before acking)."""
        relevant = [
            e
            for e in events
            if e.aggregate_type in self._domains
            and e.version
            and (e.aggregate_type, e.aggregate_id) not in self._parked
        ]
        refs = list(dict.fromkeys((e.aggregate_type, e.aggregate_id) for e in relevant))
        missing = [ref for ref in refs if ref not in self._known]
        if missing:
            snapshots = await self._loader.snapshots.load_many(missing)
            for ref in missing:
                found = snapshots.get(ref)
                self._know(ref, (found.version, found.taken_at) if found else (0, None))
        triggered: dict[AggregateRef, None] = {}
        for event in relevant:
            ref = (event.aggregate_type, event.aggregate_id)
            snapshot_version, taken_at = self._known[ref]
            progress = Progress(
                event.version or 0, event.type, event.occurred_at, snapshot_version, taken_at
            )
            if self._domains.get(event.aggregate_type).snapshot_rule.should_snapshot(progress):
                triggered[ref] = None
                self._last[ref] = event
                self._know(ref, (progress.version, event.occurred_at))
        return [self._schedule(ref) for ref in triggered]

    def _know(self, ref: AggregateRef, value: tuple[int, datetime | None]) -> None:
        self._known[ref] = value
        self._known.move_to_end(ref)
        while len(self._known) > KNOWN_CACHE_SIZE:
            self._known.popitem(last=False)

    def _schedule(self, ref: AggregateRef) -> asyncio.Task[None]:
        running = self._running.get(ref)
        if running is not None and not running.done():
            self._again.add(ref)
            return running
        task = asyncio.create_task(self._run(ref))
        self._running[ref] = task
        task.add_done_callback(lambda _: self._running.pop(ref, None))
        return task

    async def _run(self, ref: AggregateRef) -> None:
        while True:
            self._again.discard(ref)
            async with self._slots:
                try:
                    await until_done(
                        lambda: self._rebuild(ref), role="snapshotter", metrics=self._metrics
                    )
                except (ReplayFailed, Unstorable) as e:
                    await self._park(ref, e)  # no retry helps: this aggregate, not the role
                    return
            if ref not in self._again:
                return

    async def _park(self, ref: AggregateRef, error: Exception) -> None:
        """One aggregate's state cannot be folded or stored: say so, and move on without it.

        No input of any client may stop the role: the other aggregates of the partition keep
        getting snapshots. Queries of this aggregate still replay (and answer the same error).
        """
        self._parked.add(ref)
        self._metrics.aggregates_parked.labels("snapshotter", "snapshot_failed").inc()
        log.error("snapshots of %s %s stop: %s", ref[0], ref[1], error)
        event = self._last.pop(ref, None)
        if self._dead_letters is None or event is None:
            return
        out = Outgoing.of(event)
        record = Record(self._stored_topic, -1, -1, out.key, out.value, out.headers)
        letters = [DeadLetter(record, "snapshot_failed", f"{ref[0]} {ref[1]} parked: {error}")]
        await until_done(
            partial(self._dead_letters.send, letters), role="snapshotter", metrics=self._metrics
        )

    async def _rebuild(self, ref: AggregateRef) -> None:
        domain = self._domains.get(ref[0])
        folded = await self._loader.latest(domain, ref[1], save=False)
        try:
            snapshot = await self._loader.save(domain, ref[1], folded, trigger="rule")
        except StoreError as e:  # the store refuses this snapshot for good: park, never loop
            raise Unstorable(f"MongoDB refused the snapshot of {ref[0]} {ref[1]}: {e}") from e
        if snapshot is None:  # a newer one was there, or the store is down (load raises: retry)
            snapshot = await self._loader.snapshots.load(ref)
        if snapshot is not None:
            self._know(ref, (snapshot.version, snapshot.taken_at))
        self._last.pop(ref, None)

    async def drain(self) -> None:
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
