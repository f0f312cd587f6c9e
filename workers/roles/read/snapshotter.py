"""The snapshotter's logic: evaluate each domain's rule per stored event, rebuild in the background.

The rule's inputs per aggregate (the last snapshot's version and the time of the event it
ends with) live in ``RuleStates``: in the fleet a Faust table with a compacted changelog
topic, so they survive restarts and follow partitions across rebalances without a database
read per event. An aggregate the table does not know is read once from its snapshot
document. Rebuilds run with bounded concurrency and are coalesced per aggregate: a trigger
arriving during a rebuild causes one more run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial

from snapshot_rules.domain import Domains
from snapshot_rules.rules import Progress
from topics.envelope import Event
from topics.errors import EventfleetError, ReplayFailed, StoreError, Unstorable
from workers.metrics import Metrics
from workers.ports import AggregateRef, Outgoing, Record, RuleState, RuleStates
from workers.roles.deadletter import DeadLetter, DeadLetters
from workers.roles.retry import until_done
from workers.roles.state import StateLoader

log = logging.getLogger(__name__)


class NoRuleStates(EventfleetError):
    """The snapshotter was asked to work before its rule states were attached (a wiring bug)."""


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
        rule_states: RuleStates | None = None,
    ) -> None:
        self._loader = loader
        self._domains = domains
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._dead_letters = dead_letters
        self._stored_topic = stored_topic
        self._states = rule_states
        # Aggregates whose state the reducer or the store cannot take: skipped until restart.
        self._parked: set[AggregateRef] = set()
        self._last: dict[AggregateRef, Event] = {}
        self._running: dict[AggregateRef, asyncio.Task[None]] = {}
        self._again: set[AggregateRef] = set()

    def attach(self, rule_states: RuleStates) -> None:
        """Keep rule states there from now on (the fleet attaches its Faust table)."""
        self._states = rule_states

    @property
    def rule_states(self) -> RuleStates:
        if self._states is None:
            raise NoRuleStates(
                "the snapshotter has no rule states; attach a RuleStates (the fleet's Faust "
                "table, or MemoryRuleStates in tests) before handing it events."
            )
        return self._states

    async def handle(self, events: Sequence[Event]) -> list[asyncio.Task[None]]:
        """Evaluate the rules; return the rebuilds this batch triggered (await them before
        acking)."""
        relevant = [
            e
            for e in events
            if e.aggregate_type in self._domains
            and e.version
            and (e.aggregate_type, e.aggregate_id) not in self._parked
        ]
        states = self.rule_states
        refs = list(dict.fromkeys((e.aggregate_type, e.aggregate_id) for e in relevant))
        await self._recall([ref for ref in refs if states.get(ref) is None])
        triggered: dict[AggregateRef, None] = {}
        for event in relevant:
            ref = (event.aggregate_type, event.aggregate_id)
            known = states.get(ref) or RuleState(0)
            progress = Progress(
                event.version or 0, event.type, event.occurred_at, known.version, known.event_time
            )
            if self._domains.get(event.aggregate_type).snapshot_rule.should_snapshot(progress):
                triggered[ref] = None
                self._last[ref] = event
                # Counted from here on: the rebuild stores at least this version.
                states.put(ref, RuleState(progress.version, event.occurred_at))
        return [self._schedule(ref) for ref in triggered]

    async def _recall(self, refs: list[AggregateRef]) -> None:
        """Aggregates the rule states do not know: their snapshot documents, read once."""
        if not refs:
            return
        self._metrics.rule_state_misses.inc(len(refs))
        snapshots = await self._loader.snapshots.load_many(refs)
        for ref in refs:
            found = snapshots.get(ref)
            # The document keeps when it was taken, not its last event's time: close enough.
            self.rule_states.put(
                ref, RuleState(found.version, found.taken_at) if found else RuleState(0)
            )

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
        folded, tail = await self._loader.latest_with_tail(domain, ref[1], save=False)
        try:
            snapshot = await self._loader.save(domain, ref[1], folded, trigger="rule")
        except StoreError as e:  # the store refuses this snapshot for good: park, never loop
            raise Unstorable(f"MongoDB refused the snapshot of {ref[0]} {ref[1]}: {e}") from e
        if snapshot is not None and tail:
            self.rule_states.put(ref, RuleState(snapshot.version, tail[-1].occurred_at))
        elif snapshot is None:  # a newer one was there, or the store is down (load raises: retry)
            stored = await self._loader.snapshots.load(ref)
            if stored is not None:
                self.rule_states.put(ref, RuleState(stored.version, stored.taken_at))
        self._last.pop(ref, None)

    async def drain(self) -> None:
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
