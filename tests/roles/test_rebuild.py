"""Rebuilding a projection's views next to live writers, and every way a rebuild can fail."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from snapshot_rules.replay import ReplayGap
from tests.chat_events import CONVERSATION, ROOM, room_events
from tests.waiting import wait_for
from topics.errors import StoreError, StoreUnavailable
from workers.adapters.memory import MemoryViewStaging
from workers.examples.domains.chat_room import CHAT_MESSAGES
from workers.ports import ViewDoc
from workers.roles.read.projections import rebuild_views

from .chat import Wiring

LIVE_VIEWS = CHAT_MESSAGES.collection


async def rebuild(
    wiring: Wiring, progress: Callable[[int, int], None] = lambda done, total: None
) -> int:
    return await rebuild_views(
        CHAT_MESSAGES,
        events=wiring.events,
        views=wiring.views,
        staging=MemoryViewStaging(wiring.db, LIVE_VIEWS),
        metrics=wiring.metrics,
        progress=progress,
        chunk=2,
    )


async def test_rebuild_equals_the_live_view_while_writes_continue(wiring: Wiring) -> None:
    rooms = [f"r{i}" for i in range(40)]
    last = dict.fromkeys(rooms, len(CONVERSATION))
    history = [e for room in rooms for e in room_events(room, CONVERSATION)]
    await wiring.runner.handle(await wiring.store(history))
    # A view computed wrongly (say, by a bug since fixed): the rebuild must recompute it.
    wrong = await wiring.views.load((ROOM, "r0"))
    assert wrong is not None
    await wiring.views.write(wrong, replace(wrong, view={**wrong.view, "messages": []}))
    assert await wiring.views.write(None, ViewDoc(ROOM, "ghost", 1, {"messages": []}))

    rebuilding = asyncio.Event()
    during: list[int] = []

    async def live_traffic() -> None:
        await rebuilding.wait()  # from the rebuild's first step on, so they surely overlap
        rng = random.Random(11)
        for n in range(60):
            room = rng.choice(rooms)
            ops = [("MessageSent", f"x{n}", "dan"), ("MessageEdited", f"x{n}", "dan")]
            fresh = room_events(room, ops, first=last[room] + 1)
            last[room] += len(fresh)
            await wiring.runner.handle(await wiring.store(fresh))
            if rebuilding.is_set():
                during.append(n)
            await asyncio.sleep(0)

    progress: list[tuple[int, int]] = []

    def record(done: int, total: int) -> None:
        rebuilding.set()
        progress.append((done, total))

    traffic = asyncio.create_task(live_traffic())
    built = await rebuild(wiring, record)
    rebuilding.clear()
    await traffic
    assert len(during) >= 5, f"only {len(during)} live writes overlapped the rebuild"
    assert built >= len(rooms)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert progress[-1][0] == progress[-1][1] >= len(rooms) * len(CONVERSATION)

    # A view fed only live, from scratch, in order: what the rebuilt one must equal.
    reference = wiring.runner_on(type(wiring.views)(wiring.db, "reference"))
    for room in rooms:
        await reference.handle(await wiring.events.select((ROOM, room)))
    for room in rooms:
        doc = await wiring.views.load((ROOM, room))
        expected = await reference.views.load((ROOM, room))
        assert doc is not None and expected is not None
        assert (doc.version, doc.view) == (expected.version, expected.view), room
        assert doc.version == last[room] and doc.generation != "live"
    assert await wiring.views.load((ROOM, "ghost")) is None
    assert not any("rebuild" in name for name in wiring.db.collection_names())


async def test_rebuild_of_a_store_without_chat_events_leaves_an_empty_view(wiring: Wiring) -> None:
    await wiring.views.write(None, ViewDoc(ROOM, "ghost", 1, {"messages": []}))
    progress: list[tuple[int, int]] = []
    built = await rebuild(wiring, lambda done, total: progress.append((done, total)))
    assert built == 0 and progress[-1] == (0, 0)
    assert await wiring.views.versions() == {}
    assert wiring.db.collection_names() == [LIVE_VIEWS]


async def rooms_with_views(wiring: Wiring, n: int = 12) -> dict[tuple[str, str], int]:
    for i in range(n):
        await wiring.runner.handle(await wiring.store(room_events(f"r{i}", CONVERSATION)))
    return await wiring.views.versions()


async def test_the_store_failing_mid_build_discards_the_staging_views(wiring: Wiring) -> None:
    before = await rooms_with_views(wiring)
    wiring.events.fail_next(on="scan", after=2)  # two round trips answer, the third fails
    scans = wiring.events.calls["scan"]
    with pytest.raises(StoreUnavailable):
        await rebuild(wiring)
    assert wiring.events.calls["scan"] == scans + 3
    assert wiring.db.calls["insert_many"] > 0  # it had begun to build
    assert wiring.db.collection_names() == [LIVE_VIEWS]
    assert await wiring.views.versions() == before  # the live views are untouched


async def test_a_failed_swap_discards_the_staging_views(wiring: Wiring) -> None:
    before = await rooms_with_views(wiring)
    wiring.db.fail_next(on="swap")
    with pytest.raises(StoreUnavailable):
        await rebuild(wiring)
    assert wiring.db.collection_names() == [LIVE_VIEWS]
    assert await wiring.views.versions() == before


async def test_a_cancelled_rebuild_discards_the_staging_views(wiring: Wiring) -> None:
    await rooms_with_views(wiring)
    wiring.db.hold(on="insert_many")
    building = asyncio.create_task(rebuild(wiring))
    await wait_for(lambda: wiring.db.held == 1, timeout_s=5, what="the first bulk insert")
    assert len(wiring.db.collection_names()) == 2  # the staging collection, meanwhile
    building.cancel()
    with pytest.raises(asyncio.CancelledError):
        await building
    assert wiring.db.collection_names() == [LIVE_VIEWS]  # dropped before the task ended
    wiring.db.release()


async def test_a_staging_that_cannot_be_dropped_is_logged_and_the_first_error_raised(
    wiring: Wiring, caplog: pytest.LogCaptureFixture
) -> None:
    await rooms_with_views(wiring)
    refused = StoreError("MongoDB refused inserting views: planned")
    wiring.db.fail_next(error=refused, on="insert_many")
    wiring.db.fail_next(on="discard")
    with caplog.at_level(logging.WARNING, logger="workers.roles.read.projections"):
        with pytest.raises(StoreError) as caught:
            await rebuild(wiring)
    assert caught.value is refused
    [leftover] = [name for name in wiring.db.collection_names() if name != LIVE_VIEWS]
    assert f"could not drop {leftover} after a failed rebuild" in caplog.text


async def test_a_history_with_a_hole_stops_the_rebuild(wiring: Wiring) -> None:
    events = room_events("holey", CONVERSATION)
    await wiring.store([*events[:2], *events[3:]])  # version 3 is missing: a broken store
    with pytest.raises(ReplayGap, match="holey"):
        await rebuild(wiring)
    doc = await wiring.views.load((ROOM, "holey"))
    assert doc is not None and doc.version == 2  # built up to the hole, never past it
