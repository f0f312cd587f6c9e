"""The projection runner and the live rebuild on memory stores: idempotent, guarded, gap-filling."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import replace

import pytest

from snapshot_rules.replay import ReplayGap
from tests.chat_events import CONVERSATION, ROOM, room_events
from topics.envelope import new_event
from topics.errors import StoreError, StoreUnavailable
from workers.adapters.memory import (
    MemoryViewStore,
)
from workers.examples.domains.chat_room import CHAT_MESSAGES
from workers.ports import ViewDoc
from workers.roles.read.projections import MAX_CONFLICTS, Applied, ViewContention

from .chat import Wiring


async def test_redelivered_and_duplicated_events_change_nothing(wiring: Wiring) -> None:
    a = await wiring.store(room_events("a", CONVERSATION))
    b = await wiring.store(room_events("b", CONVERSATION[:3]))
    batch = [e for pair in zip(a, b, strict=False) for e in pair] + a[len(b) :]
    first = await wiring.runner.handle(batch)
    assert (first.applied, first.skipped) == (10, 0)
    before = await wiring.views.load_many([(ROOM, "a"), (ROOM, "b")])
    again = await wiring.runner.handle(batch)
    dupes = await wiring.runner.handle([*a[2:5], *a[0:3], *b, *b])
    assert (again.applied, again.skipped) == (0, 10) and (dupes.applied, dupes.skipped) == (0, 12)
    assert await wiring.views.load_many([(ROOM, "a"), (ROOM, "b")]) == before
    assert (wiring.counted("applied"), wiring.counted("skipped")) == (10, 22)
    for room in ("a", "b"):
        doc = before[(ROOM, room)]
        assert (doc.version, doc.view["messages"]) == await wiring.truth(room)
    assert [m["message_id"] for m in before[(ROOM, "a")].view["messages"]] == ["m2", "m3"]
    assert before[(ROOM, "a")].view["counts"]["ignored"] == 1


async def test_events_of_other_aggregate_types_are_not_looked_at(wiring: Wiring) -> None:
    other = new_event("order", "o1", "OrderPlaced", {}, version=1)
    assert await wiring.runner.handle([other]) == Applied() == await wiring.runner.handle([])
    assert sum(wiring.db.calls.values()) == 0 and sum(wiring.events.calls.values()) == 0


async def test_a_view_behind_the_stream_is_filled_from_the_store(wiring: Wiring) -> None:
    events = await wiring.store(room_events("gap", CONVERSATION))
    result = await wiring.runner.handle(events[-2:])  # only the tail arrives: a gap
    doc = await wiring.views.load((ROOM, "gap"))
    assert doc is not None and result.applied == len(events)
    assert (doc.version, doc.view["messages"]) == await wiring.truth("gap")


async def test_a_gap_is_filled_up_to_the_newest_event_handed_over(wiring: Wiring) -> None:
    events = await wiring.store(room_events("upto", CONVERSATION))
    await wiring.runner.handle(events[:2])
    result = await wiring.runner.handle(events[4:5])  # versions 3 and 4 missed; 6, 7 to come
    doc = await wiring.views.load((ROOM, "upto"))
    assert result.applied == 3 and doc is not None and doc.version == 5
    assert (await wiring.runner.handle(events[5:])).applied == 2


async def test_a_gap_the_store_cannot_fill_stops_the_projection(wiring: Wiring) -> None:
    orphan = room_events("hole", CONVERSATION[:3])  # version 3 arrives; the store has nothing
    with pytest.raises(ReplayGap, match="no contiguous events after version 0 up to 3"):
        await wiring.runner.handle(orphan[2:])
    assert await wiring.views.load((ROOM, "hole")) is None


async def test_concurrent_writers_never_move_a_view_backwards(wiring: Wiring) -> None:
    events = await wiring.store(room_events("race", CONVERSATION * 3))
    second = wiring.runner_on(wiring.views)
    rng = random.Random(7)
    cuts = sorted(rng.sample(range(1, len(events)), 5))
    chunks = [events[i:j] for i, j in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    # Two workers (a rebalance, a zombie) each apply every chunk, interleaved.
    await asyncio.gather(
        *(wiring.runner.handle(chunk) for chunk in chunks),
        *(second.handle(chunk) for chunk in reversed(chunks)),
    )
    doc = await wiring.views.load((ROOM, "race"))
    assert doc is not None
    assert (doc.version, doc.view["messages"]) == await wiring.truth("race")
    assert wiring.db.calls["write"] > 2  # they did race: some guarded writes were lost


class MovingViews(MemoryViewStore):
    """Another writer moves the view right after every read of it: every guarded write loses."""

    async def load(self, ref: tuple[str, str]) -> ViewDoc | None:
        doc = await super().load(ref)
        if doc is not None:
            await self._move(doc)
        return doc

    async def load_many(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], ViewDoc]:
        docs = await super().load_many(refs)
        for doc in docs.values():
            await self._move(doc)
        return docs

    async def _move(self, doc: ViewDoc) -> None:
        assert await super().write(doc, replace(doc, generation=f"g{sum(self.calls.values())}"))


async def test_a_view_that_never_stops_moving_is_reported(wiring: Wiring) -> None:
    events = await wiring.store(room_events("busy", CONVERSATION[:2]))
    await wiring.runner.handle(events[:1])
    moving = wiring.runner_on(MovingViews(wiring.db, CHAT_MESSAGES.collection))
    with pytest.raises(ViewContention, match=f"busy changed under its writer {MAX_CONFLICTS}"):
        await moving.handle(events[1:])


async def test_a_store_that_is_down_fails_the_batch_and_the_retry_applies_it(
    wiring: Wiring,
) -> None:
    events = await wiring.store(room_events("down", CONVERSATION))
    wiring.db.fail_next(on="write")
    with pytest.raises(StoreUnavailable):
        await wiring.runner.handle(events[:3])
    assert await wiring.views.load((ROOM, "down")) is None  # nothing half-written
    wiring.events.fail_next(on="select")
    with pytest.raises(StoreUnavailable):  # the gap fill reads the store
        await wiring.runner.handle(events[3:])
    assert (await wiring.runner.handle(events[3:])).applied == len(events)
    assert await wiring.runner.handle(events[:3]) == Applied(0, 3)


async def test_catch_up_brings_a_view_to_the_store(wiring: Wiring) -> None:
    events = await wiring.store(room_events("late", CONVERSATION))
    await wiring.runner.handle(events[:2])
    assert (await wiring.runner.catch_up((ROOM, "late"))).applied == len(events) - 2
    assert (await wiring.runner.catch_up((ROOM, "late"))).applied == 0
    doc = await wiring.views.load((ROOM, "late"))
    assert doc is not None and (doc.version, doc.view["messages"]) == await wiring.truth("late")


async def test_a_refusal_no_retry_fixes_reaches_the_caller(wiring: Wiring) -> None:
    events = await wiring.store(room_events("refused", CONVERSATION[:2]))
    refusal = StoreError("MongoDB refused writing the view: planned")
    wiring.db.fail_next(error=refusal, on="load_many")
    with pytest.raises(StoreError) as caught:
        await wiring.runner.handle(events)
    assert caught.value is refusal and not caught.value.retriable
