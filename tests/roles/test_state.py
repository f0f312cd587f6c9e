"""The state loader: snapshot + tail, replayed; ``at`` a version or a moment; snapshots on the way."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from snapshot_rules.replay import Folded, replay
from tests.waiting import wait_for
from topics.envelope import utc_now
from topics.errors import HistoryGone, StoreUnavailable, Unstorable
from workers.adapters.memory import MemoryEventStore, MemorySnapshotStore
from workers.cqrs.repository import Repository
from workers.metrics import Metrics
from workers.ports import Snapshot
from workers.roles.state import StateLoader

from .support import COUNTER, T0, added, sample

REF = ("counter", "c1")


@pytest.fixture
def loader(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> StateLoader:
    return StateLoader(events, snapshots, metrics, tail_threshold=5)


def truth(versions: int) -> Folded:
    return replay(COUNTER.reducer, added("c1", range(1, versions + 1)))


def replayed(metrics: Metrics) -> float:
    """How many events the loads so far replayed, in all."""
    return sample(metrics, "eventfleet_replay_length_events_sum", aggregate_type="counter")


def written(metrics: Metrics, trigger: str) -> float:
    return sample(
        metrics, "eventfleet_snapshots_written_total", aggregate_type="counter", trigger=trigger
    )


async def snapshot_at(snapshots: MemorySnapshotStore, version: int) -> None:
    state = truth(version).state
    assert state is not None
    assert await snapshots.save(Snapshot("counter", "c1", version, state, utc_now()))


async def test_latest_is_the_full_replay_and_reads_only_the_tail_after_a_snapshot(
    loader: StateLoader, events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    await events.append(added("c1", range(1, 9)))
    assert await loader.latest(COUNTER, "c1", save=False) == truth(8)
    assert replayed(metrics) == 8
    await snapshot_at(snapshots, 6)
    folded, tail = await loader.latest_with_tail(COUNTER, "c1", save=False)
    assert folded == truth(8) and [e.version for e in tail] == [7, 8]
    assert replayed(metrics) == 8 + 2
    assert await loader.latest(COUNTER, "nobody") == Folded(None, 0)


async def test_a_query_saves_the_state_it_replayed_as_the_seeds_say(
    loader: StateLoader, events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    await events.append(added("c1", range(1, 3)))
    assert await loader.latest(COUNTER, "c1") == truth(2)  # a 2-event tail, no snapshot yet
    await loader.drain()
    assert [s.version for s in snapshots.saved] == [2] and written(metrics, "query") == 1
    assert snapshots.saved[0].state == truth(2).state
    await loader.latest(COUNTER, "c1")  # an empty tail: the snapshot is the state already
    await loader.drain()
    assert len(snapshots.saved) == 1
    await events.append(added("c1", [3]))
    await loader.latest(COUNTER, "c1", save=False)  # the snapshotter's own loads never save
    await loader.drain()
    assert len(snapshots.saved) == 1


async def test_a_hot_aggregate_writes_at_most_one_snapshot_per_interval(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    loader = StateLoader(events, snapshots, metrics, tail_threshold=50, query_interval_s=60)
    await events.append(added("c1", range(1, 3)))
    await loader.latest(COUNTER, "c1")
    await loader.drain()
    for version in range(3, 13):  # ten writes, each followed by reads
        await events.append(added("c1", [version]))
        for _ in range(3):
            assert await loader.latest(COUNTER, "c1") == truth(version)
    await loader.drain()
    assert [s.version for s in snapshots.saved] == [2]  # the snapshot is younger than 60 s
    # An older snapshot (another process took it a minute ago) is replaced by the next read.
    stale = replace(snapshots.saved[0], version=3, taken_at=utc_now() - timedelta(seconds=61))
    snapshots._by_aggregate[REF] = replace(stale, state=truth(3).state)  # type: ignore[attr-defined]
    await loader.latest(COUNTER, "c1")
    await loader.drain()
    assert [s.version for s in snapshots.saved] == [2, 12]


async def test_a_long_tail_is_saved_whatever_the_interval(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    loader = StateLoader(events, snapshots, metrics, tail_threshold=5, query_interval_s=3600)
    await events.append(added("c1", range(1, 3)))
    await loader.latest(COUNTER, "c1")
    await loader.drain()
    await events.append(added("c1", range(3, 8)))  # a tail of 5: not longer than the bound
    await loader.latest(COUNTER, "c1")
    await loader.drain()
    assert [s.version for s in snapshots.saved] == [2]
    await events.append(added("c1", [8]))  # 6 events after the snapshot
    await loader.latest(COUNTER, "c1")
    await loader.drain()
    assert [s.version for s in snapshots.saved] == [2, 8]


async def test_concurrent_reads_start_one_save(
    loader: StateLoader, events: MemoryEventStore, snapshots: MemorySnapshotStore
) -> None:
    await events.append(added("c1", range(1, 4)))
    snapshots.hold(on="save")
    for _ in range(5):
        assert await loader.latest(COUNTER, "c1") == truth(3)
    await wait_for(lambda: snapshots.held == 1, timeout_s=5, what="the one save in flight")
    snapshots.release()
    await loader.drain()
    assert snapshots.calls["save"] == 1 and [s.version for s in snapshots.saved] == [3]


async def test_a_state_the_store_cannot_take_is_counted_once_and_not_retried(
    loader: StateLoader, events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    await events.append(added("c1", range(1, 4)))
    snapshots.fail_next(1, Unstorable("MongoDB cannot store the value: too large."), on="save")
    assert await loader.latest(COUNTER, "c1") == truth(3)  # the answer does not depend on it
    await loader.drain()
    for _ in range(3):
        await events.append(added("c1", [4 + _]))
        await loader.latest(COUNTER, "c1")
    await loader.drain()
    assert snapshots.saved == [] and snapshots.calls["save"] == 1
    parked = "eventfleet_aggregates_parked_total"
    assert sample(metrics, parked, role="query", reason="snapshot_failed") == 1
    other = added("c2", [1])
    await events.append([replace(e, aggregate_id="c2") for e in other])
    await loader.latest(COUNTER, "c2")  # other aggregates keep their snapshots
    await loader.drain()
    assert [s.aggregate_id for s in snapshots.saved] == ["c2"]


async def test_at_a_version_ignores_a_snapshot_past_it(
    loader: StateLoader, events: MemoryEventStore, snapshots: MemorySnapshotStore
) -> None:
    await events.append(added("c1", range(1, 11)))
    await snapshot_at(snapshots, 8)
    assert await loader.at(COUNTER, "c1", version=5) == truth(5)
    assert await loader.at(COUNTER, "c1", version=9) == truth(9)
    assert await loader.at(COUNTER, "c1", version=8) == truth(8)
    assert await loader.at(COUNTER, "c1", version=50) == truth(10)
    assert await loader.at(COUNTER, "c1") == truth(10)
    assert await loader.at(COUNTER, "c1", version=0) == Folded(None, 0)


async def test_at_a_moment_uses_a_snapshot_only_if_it_was_taken_by_then(
    loader: StateLoader, events: MemoryEventStore, snapshots: MemorySnapshotStore
) -> None:
    await events.append(added("c1", range(1, 11)))  # version v happened at T0 + v seconds
    await snapshot_at(snapshots, 8)
    # The snapshot covers versions up to 8, which happened at T0+8s: not usable at T0+5s.
    assert await loader.at(COUNTER, "c1", as_of=T0 + timedelta(seconds=5)) == truth(5)
    assert await loader.at(COUNTER, "c1", as_of=T0 + timedelta(seconds=9)) == truth(9)
    assert await loader.at(COUNTER, "c1", as_of=T0 + timedelta(seconds=8, milliseconds=1)) == (
        truth(8)
    )
    assert await loader.at(COUNTER, "c1", as_of=T0) == Folded(None, 0)
    both = await loader.at(COUNTER, "c1", version=4, as_of=T0 + timedelta(seconds=9))
    assert both == truth(4)


async def test_at_a_moment_stops_at_a_version_that_happened_later(
    loader: StateLoader, events: MemoryEventStore
) -> None:
    # Versions 1, 3 happened by T0+4s but 2 at T0+5s: version 3 cannot apply without 2.
    history = added("c1", [1, 2, 3])
    late = replace(history[1], occurred_at=T0 + timedelta(seconds=5))
    await events.append([history[0], late, history[2]])
    at = await loader.at(COUNTER, "c1", as_of=T0 + timedelta(seconds=4))
    assert at == truth(1)


async def test_a_history_with_a_hole_raises_rather_than_folding_a_wrong_state(
    loader: StateLoader, events: MemoryEventStore
) -> None:
    history = added("c1", [1, 2, 3])
    await events.append([history[0], history[2]])  # the store only guards uniqueness
    with pytest.raises(HistoryGone, match="version 2 is stored nowhere any more") as raised:
        await loader.latest(COUNTER, "c1")
    assert (raised.value.after_version, raised.value.whole_from) == (1, 3)


async def test_a_state_at_a_point_is_never_folded_across_a_hole(
    loader: StateLoader, events: MemoryEventStore
) -> None:
    await events.append(added("c1", [1, 2, 3, 7, 8]))  # 4-6 stored nowhere any more
    assert await loader.at(COUNTER, "c1", version=3) == truth(3)
    for version in (4, 6, 7, 8, None):
        with pytest.raises(HistoryGone) as raised:
            await loader.at(COUNTER, "c1", version=version)
        assert (raised.value.after_version, raised.value.whole_from) == (3, 7)
    with pytest.raises(HistoryGone):  # 4-6 may have happened by then: unknowable
        await loader.at(COUNTER, "c1", as_of=T0 + timedelta(seconds=3, milliseconds=1))
    assert await loader.at(COUNTER, "c1", as_of=T0 + timedelta(seconds=2)) == truth(2)


async def test_a_store_that_is_down_fails_the_load(
    loader: StateLoader, events: MemoryEventStore, snapshots: MemorySnapshotStore
) -> None:
    await events.append(added("c1", [1, 2]))
    snapshots.fail_next(on="load")
    with pytest.raises(StoreUnavailable):
        await loader.latest(COUNTER, "c1")
    events.fail_next(on="select")
    with pytest.raises(StoreUnavailable):
        await loader.at(COUNTER, "c1", version=1)
    assert await loader.latest(COUNTER, "c1") == truth(2)


async def test_saving_only_stores_a_newer_real_state_and_never_raises_unavailable(
    loader: StateLoader, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    assert await loader.save(COUNTER, "c1", Folded(None, 0), trigger="rule") is None
    assert await loader.save(COUNTER, "c1", Folded({"total": 0}, 0), trigger="rule") is None
    snapshots.fail_next(on="save")
    assert await loader.save(COUNTER, "c1", truth(3), trigger="rule") is None  # logged
    saved = await loader.save(COUNTER, "c1", truth(3), trigger="rule")
    assert saved is not None and saved.version == 3 and saved.state == truth(3).state
    assert await loader.save(COUNTER, "c1", truth(2), trigger="rule") is None  # older: refused
    assert written(metrics, "rule") == 1 and len(snapshots.saved) == 1
    snapshots.down()
    loader.save_later(COUNTER, "c1", truth(4), trigger="query")
    await loader.drain()  # the background save failed quietly; the next load replays more
    assert written(metrics, "query") == 0


async def test_a_sync_validation_saves_the_state_it_validated_on(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    loader = StateLoader(events, snapshots, metrics, query_interval_s=0)
    await events.append(added("c1", range(1, 4)))
    root = await Repository(loader).load(COUNTER, "c1")
    assert root.original_version == 3 and root.state == truth(3).state
    await loader.drain()
    assert [s.version for s in snapshots.saved] == [3] and written(metrics, "validation") == 1
