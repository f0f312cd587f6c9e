"""The snapshotter: each domain's rule per stored event, rebuilds coalesced, bounded and retried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import pytest

from snapshot_rules.domain import Domains
from snapshot_rules.replay import replay
from tests.waiting import wait_for
from topics.envelope import Event, new_event, utc_now
from topics.errors import StoreError, StoreUnavailable
from workers.adapters.memory import MemoryEventStore, MemoryRuleStates, MemorySnapshotStore
from workers.metrics import Metrics
from workers.ports import RuleState, Snapshot
from workers.roles.read.snapshotter import NoRuleStates, Snapshotter
from workers.roles.state import StateLoader

from .support import COUNTER, added, retries, sample


@dataclass
class Pipeline:
    """The store and the snapshotter after it: events are stored, then handed over as stored."""

    events: MemoryEventStore
    snapshots: MemorySnapshotStore
    snapshotter: Snapshotter
    metrics: Metrics

    async def stored(self, batch: Sequence[Event]) -> list[asyncio.Task[None]]:
        await self.events.append(batch)
        return await self.snapshotter.handle(batch)

    async def settled(self, batch: Sequence[Event]) -> int:
        """Store and hand over ``batch``, wait for its rebuilds; return how many it triggered."""
        tasks = await self.stored(batch)
        await asyncio.gather(*tasks)
        return len(tasks)

    async def version(self, aggregate_id: str, domain: str = "counter") -> int | None:
        snapshot = await self.snapshots.load((domain, aggregate_id))
        return None if snapshot is None else snapshot.version

    def written(self, trigger: str = "rule") -> float:
        return sample(
            self.metrics,
            "eventfleet_snapshots_written_total",
            aggregate_type="counter",
            trigger=trigger,
        )


def pipeline(
    events: MemoryEventStore,
    snapshots: MemorySnapshotStore,
    domains: Domains,
    metrics: Metrics,
    *,
    concurrency: int = 4,
    rule_states: MemoryRuleStates | None = None,
) -> Pipeline:
    loader = StateLoader(events, snapshots, metrics)
    snapshotter = Snapshotter(
        loader=loader,
        domains=domains,
        metrics=metrics,
        concurrency=concurrency,
        rule_states=rule_states if rule_states is not None else MemoryRuleStates(),
    )
    return Pipeline(events, snapshots, snapshotter, metrics)


@pytest.fixture
def pipe(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, domains: Domains, metrics: Metrics
) -> Pipeline:
    return pipeline(events, snapshots, domains, metrics)


async def test_every_n_events_since_the_last_snapshot(pipe: Pipeline) -> None:
    assert await pipe.settled(added("c1", [1, 2])) == 0
    assert await pipe.version("c1") is None
    assert await pipe.settled(added("c1", [3])) == 1
    assert await pipe.version("c1") == 3
    assert await pipe.settled(added("c1", [4, 5])) == 0
    assert await pipe.settled(added("c1", [6, 7, 8, 9, 10])) == 1  # one rebuild per batch
    snapshot = await pipe.snapshots.load(("counter", "c1"))
    assert snapshot is not None and snapshot.version == 10
    assert (
        snapshot.state == replay(COUNTER.reducer, await pipe.events.select(("counter", "c1"))).state
    )
    assert pipe.written() == 2


async def test_a_terminal_event_snapshots_at_once(pipe: Pipeline) -> None:
    assert await pipe.settled(added("c2", [1, 2], closing=2)) == 1
    snapshot = await pipe.snapshots.load(("counter", "c2"))
    assert snapshot is not None and snapshot.version == 2 and snapshot.state["closed"]


async def test_an_interval_rule_keeps_the_snapshot_at_most_that_far_behind(pipe: Pipeline) -> None:
    now = utc_now()
    first = added("t1", [1], domain="timed", at=now, step=timedelta(0))
    assert await pipe.settled(first) == 1  # no snapshot yet: the first event takes one
    assert await pipe.version("t1", "timed") == 1
    soon = added("t1", [2], domain="timed", at=now + timedelta(seconds=30), step=timedelta(0))
    assert await pipe.settled(soon) == 0
    late = added("t1", [3], domain="timed", at=now + timedelta(seconds=61), step=timedelta(0))
    assert await pipe.settled(late) == 1
    assert await pipe.version("t1", "timed") == 3


async def test_the_count_starts_from_the_stored_snapshot_after_a_restart(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, domains: Domains, metrics: Metrics
) -> None:
    before = pipeline(events, snapshots, domains, metrics)
    assert await before.settled(added("c3", [1, 2, 3, 4])) == 1  # snapshot at 4
    restarted = pipeline(events, snapshots, domains, metrics)  # its rule states are empty
    assert await restarted.settled(added("c3", [5, 6])) == 0  # 2 since the stored snapshot
    assert await restarted.settled(added("c3", [7])) == 1
    assert await restarted.version("c3") == 7
    # The snapshot document was read once; afterwards the rule states know it.
    assert snapshots.calls["load_many"] == 2  # one per process
    assert sample(metrics, "eventfleet_snapshot_rule_misses_total") == 2


async def test_rule_states_that_survive_a_restart_need_no_store_read(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, domains: Domains, metrics: Metrics
) -> None:
    table = MemoryRuleStates()  # the Faust table: restored from its changelog on assignment
    before = pipeline(events, snapshots, domains, metrics, rule_states=table)
    assert await before.settled(added("c3", [1, 2, 3, 4])) == 1
    assert await before.settled(added("c3", [5])) == 0
    reads = snapshots.calls["load_many"]
    restarted = pipeline(events, snapshots, domains, metrics, rule_states=table)
    assert await restarted.settled(added("c3", [6])) == 0  # 2 since the snapshot at 4
    assert await restarted.settled(added("c3", [7])) == 1
    assert snapshots.calls["load_many"] == reads  # every(n) counted on without a read
    assert table.get(("counter", "c3")) == RuleState(7, added("c3", [7])[0].occurred_at)


async def test_forgotten_rule_states_are_read_again_and_never_wrong(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, domains: Domains, metrics: Metrics
) -> None:
    table = MemoryRuleStates(max_entries=2)  # bounded: the least recent aggregates go
    pipe = pipeline(events, snapshots, domains, metrics, rule_states=table)
    for name in ("a", "b", "c"):
        assert await pipe.settled(added(name, [1, 2, 3])) == 1
    assert len(table) == 2 and table.get(("counter", "a")) is None
    assert await pipe.settled(added("a", [4, 5])) == 0  # re-read: 2 since the snapshot at 3
    assert await pipe.settled(added("a", [6])) == 1


async def test_a_snapshotter_without_rule_states_says_how_to_wire_it(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, domains: Domains, metrics: Metrics
) -> None:
    bare = Snapshotter(loader=StateLoader(events, snapshots, metrics), domains=domains,
                       metrics=metrics, concurrency=1)  # fmt: skip
    with pytest.raises(NoRuleStates, match="attach a RuleStates"):
        await bare.handle(added("x", [1]))
    bare.attach(MemoryRuleStates())
    await asyncio.gather(*await bare.handle(added("x", [1])))


async def test_unknown_types_and_unversioned_events_are_not_looked_at(pipe: Pipeline) -> None:
    stranger = new_event("order", "o1", "OrderPlaced", {}, version=1)
    unversioned = new_event("counter", "c4", "Added", {"n": 1})
    assert await pipe.snapshotter.handle([stranger, unversioned]) == []
    assert sum(pipe.snapshots.calls.values()) == 0 and sum(pipe.events.calls.values()) == 0


async def test_a_trigger_during_a_rebuild_causes_exactly_one_more_run(pipe: Pipeline) -> None:
    pipe.events.hold(on="select")
    [running] = await pipe.stored(added("c5", [1, 2, 3]))
    await wait_for(lambda: pipe.events.held == 1, timeout_s=5, what="the rebuild to read")
    assert await pipe.stored(added("c5", [4, 5, 6])) == [running]
    assert await pipe.stored(added("c5", [7, 8, 9])) == [running]  # coalesced with the one above
    pipe.events.release()
    await running
    assert pipe.events.calls["select"] == 2  # the held run, and one more for the triggers
    assert [s.version for s in pipe.snapshots.saved] == [9]  # the second found nothing newer
    assert await pipe.settled(added("c5", [10, 11, 12])) == 1  # done: a new trigger, a new run
    assert await pipe.version("c5") == 12


async def test_rebuilds_run_no_more_than_the_concurrency_allows(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, domains: Domains, metrics: Metrics
) -> None:
    pipe = pipeline(events, snapshots, domains, metrics, concurrency=1)
    events.hold(on="select")
    tasks = await pipe.stored([*added("a", [1, 2, 3]), *added("b", [1, 2, 3])])
    assert len(tasks) == 2
    await wait_for(lambda: events.held == 1, timeout_s=5, what="one rebuild to read")
    for _ in range(20):  # every other ready task gets its turn: none may start a second rebuild
        await asyncio.sleep(0)
    assert (events.held, snapshots.calls["load"]) == (1, 1)
    events.release()
    await asyncio.gather(*tasks)
    assert (await pipe.version("a"), await pipe.version("b")) == (3, 3)


async def test_a_store_that_is_down_pauses_the_rebuild_until_it_answers(pipe: Pipeline) -> None:
    pipe.snapshots.fail_next(2, on="load")
    pipe.events.fail_next(1, on="select")
    assert await pipe.settled(added("c6", [1, 2, 3])) == 1
    assert await pipe.version("c6") == 3
    assert retries(pipe.metrics, "snapshotter", "store") == 3


async def test_an_error_no_retry_fixes_fails_the_rebuild(pipe: Pipeline) -> None:
    refused = StoreError("MongoDB refused reading counter c7: planned")
    pipe.events.fail_next(error=refused, on="select")
    [task] = await pipe.stored(added("c7", [1, 2, 3]))
    with pytest.raises(StoreError) as caught:
        await task  # the agent stops the process with the batch unacked
    assert caught.value is refused
    assert retries(pipe.metrics, "snapshotter", "store") == 0
    assert await pipe.version("c7") is None


async def test_reading_the_snapshots_down_fails_the_batch_and_caches_nothing(
    pipe: Pipeline,
) -> None:
    batch = added("c8", [1, 2, 3])
    await pipe.events.append(batch)
    pipe.snapshots.fail_next(on="load_many")
    with pytest.raises(StoreUnavailable):
        await pipe.snapshotter.handle(batch)  # the agent retries the batch
    tasks = await pipe.snapshotter.handle(batch)
    await asyncio.gather(*tasks)
    assert len(tasks) == 1 and await pipe.version("c8") == 3


async def test_a_newer_snapshot_written_meanwhile_is_kept(pipe: Pipeline) -> None:
    pipe.events.hold(on="select")
    [running] = await pipe.stored(added("c9", [1, 2, 3]))
    await wait_for(lambda: pipe.events.held == 1, timeout_s=5, what="the rebuild to read")
    await pipe.events.append(added("c9", [4, 5, 6, 7]))
    theirs = Snapshot("counter", "c9", 7, {"by": "another worker"}, utc_now())
    assert await pipe.snapshots.save(theirs)
    pipe.events.release()
    await running
    stored = await pipe.snapshots.load(("counter", "c9"))
    assert stored is not None and stored.state == {"by": "another worker"}
    assert pipe.written() == 0
    # The process now counts from their snapshot: version 10 is 3 after it.
    assert await pipe.settled(added("c9", [8, 9])) == 0
    assert await pipe.settled(added("c9", [10])) == 1


async def test_a_failed_save_costs_a_later_snapshot_never_the_stream(pipe: Pipeline) -> None:
    pipe.snapshots.fail_next(on="save")
    assert await pipe.settled(added("c10", [1, 2, 3])) == 1  # the rebuild ends, unsaved
    assert pipe.snapshots.saved == [] and retries(pipe.metrics, "snapshotter", "store") == 0
    assert await pipe.settled(added("c10", [4, 5])) == 0  # counted from the triggering event
    assert await pipe.settled(added("c10", [6])) == 1
    assert await pipe.version("c10") == 6


async def test_drain_waits_for_running_rebuilds(pipe: Pipeline) -> None:
    pipe.events.hold(on="select")
    [running] = await pipe.stored(added("c11", [1, 2, 3]))
    await wait_for(lambda: pipe.events.held == 1, timeout_s=5, what="the rebuild to read")
    draining = asyncio.create_task(pipe.snapshotter.drain())
    await asyncio.sleep(0)
    assert not draining.done()
    pipe.events.release()
    await draining
    assert running.done() and await pipe.version("c11") == 3
