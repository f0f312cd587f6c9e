"""The snapshot ladder in the state loader: a past state replays from the nearest rung, equal to
a replay from the start."""

from __future__ import annotations

import itertools
from datetime import timedelta

from snapshot_rules.replay import replay
from tests.roles.support import COUNTER, T0, added
from workers.adapters.memory import MemoryEventStore, MemorySnapshotLadder, MemorySnapshotStore
from workers.metrics import create_metrics
from workers.roles.state import StateLoader


async def loaders(n: int, *, step: int) -> tuple[StateLoader, StateLoader, MemorySnapshotLadder]:
    events, ladder = MemoryEventStore(), MemorySnapshotLadder()
    await events.append(added("c1", range(1, n + 1)))
    laddered = StateLoader(events, MemorySnapshotStore(), create_metrics(), ladder=ladder,
                           ladder_step=step)  # fmt: skip
    plain = StateLoader(events, MemorySnapshotStore(), create_metrics(), ladder_step=0)
    for v in range(100, n + 1, 100):  # the snapshots the rule every(100) would take
        folded = await laddered.at(COUNTER, "c1", version=v)
        await laddered.save(COUNTER, "c1", folded, trigger="rule")
    return laddered, plain, ladder


async def test_rungs_are_kept_a_step_apart_and_past_states_replay_from_them() -> None:
    laddered, plain, ladder = await loaders(5000, step=1000)
    found = [await ladder.below(("counter", "c1"), version=v) for v in (99, 1099, 1100, 5000)]
    assert [r.version if r else None for r in found] == [None, 100, 1100, 4100]
    # rungs: the first snapshot, then the first snapshot 1000 versions past the newest rung
    all_events = await laddered.events.select(("counter", "c1"))
    for version in (1, 99, 1100, 2500, 4999):
        expected = replay(COUNTER.reducer, all_events[:version])
        assert await laddered.at(COUNTER, "c1", version=version) == expected
        assert await plain.at(COUNTER, "c1", version=version) == expected
    moment = T0 + timedelta(seconds=3333)  # event v occurred at T0 + v seconds
    assert await laddered.at(COUNTER, "c1", as_of=moment) == replay(
        COUNTER.reducer, all_events[:3333]
    )


async def test_a_ladder_that_is_down_only_costs_a_longer_replay() -> None:
    laddered, _, ladder = await loaders(1000, step=100)
    ladder.down()
    all_events = await laddered.events.select(("counter", "c1"))
    assert await laddered.at(COUNTER, "c1", version=450) == replay(
        COUNTER.reducer, all_events[:450]
    )
    await laddered.events.append(added("c1", [1001]))
    folded = await laddered.at(COUNTER, "c1", version=1001)
    assert await laddered.save(COUNTER, "c1", folded, trigger="rule") is not None  # no rung


async def test_a_long_ladder_is_thinned_to_increasing_distances_and_still_exact() -> None:
    laddered, plain, ladder = await loaders(10_000, step=100)  # 100 rungs climbed
    versions = await ladder.versions(("counter", "c1"))
    assert len(versions) <= 30 and versions[-4:] == [9_700, 9_800, 9_900, 10_000]
    gaps = [b - a for a, b in itertools.pairwise(versions)]
    assert gaps[-1] == 100 and gaps[0] >= 8 * 100  # sparser further back, denser near the head
    all_events = await laddered.events.select(("counter", "c1"))
    for version in (1, 150, 5_001, 7_345, 9_999):
        expected = replay(COUNTER.reducer, all_events[:version])
        assert await laddered.at(COUNTER, "c1", version=version) == expected
        assert await plain.at(COUNTER, "c1", version=version) == expected


async def test_a_save_reads_the_ladder_only_when_a_rung_may_be_due() -> None:
    events, ladder = MemoryEventStore(), MemorySnapshotLadder()
    await events.append(added("c1", range(1, 5001)))
    laddered = StateLoader(events, MemorySnapshotStore(), create_metrics(), ladder=ladder,
                           ladder_step=1000)  # fmt: skip
    plain = StateLoader(events, MemorySnapshotStore(), create_metrics(), ladder_step=0)
    for v in range(100, 5001, 100):  # 50 saves
        await laddered.save(COUNTER, "c1", await plain.at(COUNTER, "c1", version=v), trigger="rule")
    # The first save of the aggregate reads the ladder; later ones only when 1000 versions
    # have passed since the rung this process remembers (it was 50 reads).
    assert ladder.faults.calls["below"] == 5, ladder.faults.calls
    assert await ladder.versions(("counter", "c1")) == [100, 1100, 2100, 3100, 4100]


async def test_a_rung_another_process_added_is_read_before_one_is_added_again() -> None:
    events, ladder = MemoryEventStore(), MemorySnapshotLadder()
    await events.append(added("c1", range(1, 2201)))
    one, other = (StateLoader(events, MemorySnapshotStore(), create_metrics(), ladder=ladder,
                              ladder_step=1000) for _ in range(2))  # fmt: skip
    for loader, version in ((one, 100), (other, 1100), (other, 1500), (one, 1200), (one, 2100)):
        await loader.save(COUNTER, "c1", await loader.at(COUNTER, "c1", version=version),
                          trigger="rule")  # fmt: skip
    # one remembered 100; at 1200 it read the ladder, found other's 1100 and added nothing;
    # at 2100 its memory (1100) says a rung is due again.
    assert await ladder.versions(("counter", "c1")) == [100, 1100, 2100]
