"""History within bounds on the memory adapters: what moves, and reads identical before/after."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from snapshot_rules.domain import Domain, Domains, Retention
from tests.roles.support import COUNTER, T0, added
from workers.adapters.memory import MemoryEventStore, MemorySnapshotStore
from workers.ports import Snapshot
from workers.roles.ops.archive import Archiver, TieredEvents
from workers.roles.read.paging import read_all

REF = ("counter", "c1")


def kept(retention: Retention) -> Domains:
    fields = {n: getattr(COUNTER, n) for n in COUNTER.__slots__ if not n.startswith("_")}
    return Domains([Domain(**{**fields, "retention": retention})])


async def history(n: int, *, snapshot_at: int | None) -> tuple[TieredEvents, MemorySnapshotStore]:
    hot, snapshots = MemoryEventStore(), MemorySnapshotStore()
    await hot.append(added("c1", range(1, n + 1)))
    await hot.append(added("c2", range(1, 4)))
    if snapshot_at is not None:
        await snapshots.save(Snapshot("counter", "c1", snapshot_at, {"total": 0}, T0))
    return TieredEvents(hot, MemoryEventStore()), snapshots


async def every_read(events: TieredEvents) -> dict[str, Any]:
    """Everything a reader can ask, as plain values."""
    ids = [e.id for e in await events.select(REF)]
    back: list[int] = []
    cursor = None
    while True:
        page = await events.select(REF, before=cursor, desc=True, limit=37)
        if not page:
            break
        back += [e.version or 0 for e in page]
        cursor = page[-1].version
    return {
        "all": [e.version for e in await events.select(REF)],
        "pages": [e.version async for e in read_all(events, REF, page=64)],
        "from_10": [e.version for e in await events.select(REF, after=10, limit=5)],
        "to_50": [e.version for e in await events.select(REF, after=40, before=51)],
        "as_of": [e.version for e in await events.select(REF, as_of=T0 + timedelta(seconds=30))],
        "back": back,
        "typed_back": [
            e.version for e in await events.select(REF, desc=True, limit=5, types=["Added"])
        ],
        "found": sorted((await events.find(ids[:3] + ids[-3:], aggregates=[REF])).keys()),
        "scan": [(e.aggregate_id, e.version) async for e in events.scan(["counter"])],
        "count": await events.count(["counter"]),
        "heads": await events.heads([REF]),
        "last": await events.select(REF, desc=True, limit=1),
        "typed": [e.version for e in await events.select(REF, after=10, limit=5, types=["Added"])],
        "back_between": [
            e.version for e in await events.select(REF, after=700, before=850, desc=True)
        ],
        "back_as_of": [
            e.version
            for e in await events.select(REF, desc=True, limit=3, as_of=T0 + timedelta(seconds=30))
        ],
        "back_after": [e.version for e in await events.select(REF, after=795, desc=True, limit=20)],
    }


async def test_reads_are_identical_before_and_after_archiving() -> None:
    events, snapshots = await history(1000, snapshot_at=800)
    before = await every_read(events)
    archiver = Archiver(events, snapshots, kept(Retention(keep_last=100)), batch=64)
    [planned] = await archiver.plan()
    assert (planned.aggregate, planned.from_version, planned.through_version) == (REF, 1, 800)
    assert await events.hot.count(["counter"]) == 1003  # a dry run moves nothing
    [moved] = await archiver.run()
    assert moved == planned
    assert await events.archive.count(["counter"]) == 800
    assert [e.version for e in await events.hot.select(REF)] == list(range(801, 1001))
    assert await every_read(events) == before
    assert await archiver.run() == []  # nothing more is due


async def test_nothing_moves_past_the_snapshot_the_count_or_the_newest_event() -> None:
    events, snapshots = await history(50, snapshot_at=None)
    assert await Archiver(events, snapshots, kept(Retention(keep_last=1))).run() == []
    await snapshots.save(Snapshot("counter", "c1", 50, {}, T0))
    [moved] = await Archiver(events, snapshots, kept(Retention(keep_last=1))).run()
    assert moved.through_version == 49  # the newest event always stays hot
    events, snapshots = await history(50, snapshot_at=50)
    [moved] = await Archiver(events, snapshots, kept(Retention(keep_last=20))).run()
    assert moved.through_version == 30


async def test_age_retention_moves_only_what_is_old_enough() -> None:
    events, snapshots = await history(100, snapshot_at=90)
    now = T0 + timedelta(seconds=60)  # event v occurred at T0 + v seconds
    archiver = Archiver(events, snapshots, kept(Retention(keep_s=20)), batch=7, now=lambda: now)
    [moved] = await archiver.run()
    assert (moved.from_version, moved.through_version) == (1, 40)
    both = Archiver(events, snapshots, kept(Retention(keep_s=0, keep_last=50)), now=lambda: now)
    [moved] = await both.run()  # past both: older than now and beyond the newest 50
    assert (moved.from_version, moved.through_version) == (41, 50)
    assert [e.version async for e in read_all(events, REF)] == list(range(1, 101))


async def test_under_live_writes_nothing_is_lost_or_doubled() -> None:
    events, snapshots = await history(600, snapshot_at=550)
    archiver = Archiver(events, snapshots, kept(Retention(keep_last=10)), batch=16)
    stop = asyncio.Event()
    reads: list[list[int]] = []

    async def write() -> None:
        version = 600
        while not stop.is_set():
            version += 1
            await events.append(added("c1", [version]))
            await asyncio.sleep(0)

    async def read() -> None:
        while not stop.is_set():
            reads.append([e.version or 0 async for e in read_all(events, REF, page=50)])
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(write()), asyncio.create_task(read())]
    moved = await archiver.run()
    stop.set()
    await asyncio.gather(*tasks)
    assert moved and moved[0].through_version == 550
    final = [e.version or 0 async for e in read_all(events, REF, page=50)]
    assert final == list(range(1, len(final) + 1)) and len(final) > 600
    for seen in reads:  # every read during the move: contiguous from 1, each version once
        assert seen == list(range(1, len(seen) + 1))
    hot = {e.id for e in await events.hot.select(REF)}
    archived = {e.id for e in await events.archive.select(REF)}
    assert not hot & archived and len(hot | archived) == len(final)


async def test_a_move_stopped_between_copy_and_delete_reads_once_and_finishes() -> None:
    events, snapshots = await history(100, snapshot_at=100)
    copied = await events.hot.select(REF, before=61)
    await events.archive.insert_missing(copied)  # the process died before the delete
    events.archived()
    assert [e.version for e in await events.select(REF)] == list(range(1, 101))
    assert [e.version async for e in events.scan(["counter"]) if e.aggregate_id == "c1"] == list(
        range(1, 101)
    )
    assert [e.version for e in await events.select(REF, desc=True)] == list(range(100, 0, -1))
    typed = await events.select(REF, before=70, desc=True, limit=20, types=["Added"])
    assert [e.version for e in typed] == list(range(69, 49, -1))
    [moved] = await Archiver(events, snapshots, kept(Retention(keep_last=1))).run()
    assert moved.through_version == 99 and await events.archive.count(["counter"]) == 99
    assert [e.version for e in await events.select(REF)] == list(range(1, 101))


async def test_the_archive_is_asked_only_for_what_may_lie_below_the_hot_part() -> None:
    events, _ = await history(10, snapshot_at=None)
    hot, archive = events.hot, events.archive

    async def calls(**select: Any) -> tuple[int, int]:
        before = (hot.calls["select"], archive.calls["select"])
        await events.select(**select)
        return hot.calls["select"] - before[0], archive.calls["select"] - before[1]

    nobody = ("counter", "nobody")
    assert await calls(aggregate=nobody) == (1, 0)  # no hot event: none anywhere
    assert await calls(aggregate=nobody, desc=True, limit=1) == (1, 0)
    assert await calls(aggregate=REF, desc=True, limit=1) == (1, 0)  # the newest is hot
    assert await calls(aggregate=REF, desc=True) == (1, 0)  # it reached version 1: whole
    assert await calls(aggregate=REF, after=4) == (1, 0)


def test_retention_is_declared_with_an_age_or_a_count() -> None:
    with pytest.raises(ValueError, match="keep_s"):
        Retention()
    with pytest.raises(ValueError, match="keep_last must be 1 or more"):
        Retention(keep_last=0)
    with pytest.raises(ValueError, match="keep_s must be 0 or more"):
        Retention(keep_s=-1)
    with pytest.raises(ValueError, match="at least one event"):
        Archiver(TieredEvents(MemoryEventStore(), MemoryEventStore()), MemorySnapshotStore(),
                 Domains([]), batch=0)  # fmt: skip


async def test_a_type_is_whole_in_the_hot_store_until_its_history_is_archived() -> None:
    """What lets the appender store a new aggregate without reading it first: no event of its
    type is archived, so an aggregate that exists has its version 1 in the hot store."""
    events, snapshots = await history(100, snapshot_at=90)
    now = [0.0]
    elsewhere = TieredEvents(events.hot, events.archive, recheck_s=5, clock=lambda: now[0])
    assert await events.whole_in_hot("counter") and await elsewhere.whole_in_hot("counter")
    await Archiver(events, snapshots, kept(Retention(keep_last=10))).run()
    assert not await events.whole_in_hot("counter")  # the move was this process's own
    assert await events.whole_in_hot("order")  # nothing of it archived
    assert await elsewhere.whole_in_hot("counter")  # another process: yes, until it asks again
    now[0] += 5
    assert not await elsewhere.whole_in_hot("counter")


async def test_an_archive_without_one_type_is_still_read_for_another() -> None:
    """What the archive holds none of is remembered per type: a process that learned the
    archive holds no ``order`` still counts the archived ``counter`` events."""
    events, snapshots = await history(100, snapshot_at=90)
    await Archiver(events, snapshots, kept(Retention(keep_last=10))).run()
    elsewhere = TieredEvents(events.hot, events.archive)  # another process: nothing learned
    assert await elsewhere.count(["order"]) == 0  # the archive holds no order
    assert await elsewhere.count(["counter"]) == await events.count(["counter"]) == 103
