"""Projections on the real MongoDB protocol: idempotent under redelivery, guarded, rebuildable live."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from snapshot_rules.replay import replay
from tests.chat_events import CONVERSATION, room_events
from tests.waiting import within
from topics.envelope import Event
from topics.errors import UnknownProjection
from workers.adapters.mongo import (
    Document,
    MongoEventStore,
    MongoViewStaging,
    MongoViewStore,
    connect,
    database,
)
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains import chat_domains
from workers.examples.domains.chat_room import CHAT_MESSAGES, reduce_chat_room
from workers.metrics import Metrics, create_metrics
from workers.ports import ViewDoc, ViewStore
from workers.roles.read.projections import ProjectionRunner, rebuild_views
from workers.runtime.rebuild import projection_named


@dataclass
class Wiring:
    """A database of the test's own with its event store, views and a live runner."""

    db: AsyncDatabase[Document]
    events: MongoEventStore
    views: MongoViewStore
    runner: ProjectionRunner
    metrics: Metrics

    def runner_on(self, collection: str) -> ProjectionRunner:
        views = MongoViewStore(self.db, collection)
        return ProjectionRunner(
            CHAT_MESSAGES, views=views, events=self.events, metrics=create_metrics()
        )

    async def store(self, events: list[Event]) -> list[Event]:
        await self.events.append(events)
        return events

    async def truth(self, room: str) -> tuple[int, Any]:
        """The room as replay of the store sees it: (version, messages)."""
        folded = replay(reduce_chat_room, await self.events.select(("chat_room", room)))
        return folded.version, folded.state["messages"] if folded.state else None


@pytest.fixture
async def wiring(stack: EmbeddedStack, unique_name: str) -> AsyncIterator[Wiring]:
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    db = database(client, unique_name)
    events = MongoEventStore(db)
    await events.ensure_indexes()
    views = MongoViewStore(db, CHAT_MESSAGES.collection)
    metrics = create_metrics()
    runner = ProjectionRunner(CHAT_MESSAGES, views=views, events=events, metrics=metrics)
    try:
        yield Wiring(db, events, views, runner, metrics)
    finally:
        await client.drop_database(unique_name)
        await client.close()


class HeldStaging:
    """A rebuild's staging whose views are written only once ``until`` is set (forced overlap)."""

    def __init__(self, inner: MongoViewStaging, until: asyncio.Event) -> None:
        self._inner = inner
        self._until = until

    async def staging(self, generation: str) -> ViewStore:
        return HeldViews(await self._inner.staging(generation), self._until)

    async def swap(self, staging: ViewStore) -> None:
        await self._inner.swap(staging.inner if isinstance(staging, HeldViews) else staging)

    async def discard(self, staging: ViewStore) -> None:
        await self._inner.discard(staging.inner if isinstance(staging, HeldViews) else staging)


class HeldViews:
    """A view store whose bulk inserts wait for an event first."""

    def __init__(self, inner: ViewStore, until: asyncio.Event) -> None:
        self.inner = inner
        self._until = until

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def insert_many(self, docs: Any) -> None:
        await within(self._until.wait(), timeout_s=30, what="live writes during the rebuild")
        await self.inner.insert_many(docs)


def counted(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "eventfleet_projection_events_total",
        {"projection": "chat_messages", "outcome": outcome},
    )
    return value or 0.0


async def test_redelivered_and_duplicated_events_change_nothing(wiring: Wiring) -> None:
    a = await wiring.store(room_events("a", CONVERSATION))
    b = await wiring.store(room_events("b", CONVERSATION[:3]))
    batch = [e for pair in zip(a, b, strict=False) for e in pair] + a[len(b) :]

    first = await wiring.runner.handle(batch)
    assert (first.applied, first.skipped) == (10, 0)
    before = await wiring.views.load_many([("chat_room", "a"), ("chat_room", "b")])
    again = await wiring.runner.handle(batch)
    dupes = await wiring.runner.handle([*a[2:5], *a[0:3], *b, *b])
    assert (again.applied, again.skipped) == (0, 10)
    assert (dupes.applied, dupes.skipped) == (0, 12)
    assert await wiring.views.load_many([("chat_room", "a"), ("chat_room", "b")]) == before
    assert (counted(wiring.metrics, "applied"), counted(wiring.metrics, "skipped")) == (10, 22)

    for room, doc in (("a", before[("chat_room", "a")]), ("b", before[("chat_room", "b")])):
        assert (doc.version, doc.view["messages"]) == await wiring.truth(room)
    assert [m["message_id"] for m in before[("chat_room", "a")].view["messages"]] == ["m2", "m3"]
    assert before[("chat_room", "a")].view["counts"]["ignored"] == 1


async def test_a_view_behind_the_stream_is_filled_from_the_store(wiring: Wiring) -> None:
    events = await wiring.store(room_events("gap", CONVERSATION))
    # Only the tail arrives (the view was lost, or rebuilt from an older point): a gap.
    result = await wiring.runner.handle(events[-2:])
    doc = await wiring.views.load(("chat_room", "gap"))
    assert doc is not None and result.applied == len(events)
    assert (doc.version, doc.view["messages"]) == await wiring.truth("gap")


async def test_a_gap_the_store_cannot_fill_stops_the_projection(wiring: Wiring) -> None:
    # Version 3 reaches the projection, but the store has nothing for it: a broken store.
    orphan = room_events("hole", CONVERSATION[:3])
    from snapshot_rules.replay import ReplayGap

    with pytest.raises(ReplayGap, match="no contiguous events after version 0 up to 3"):
        await wiring.runner.handle(orphan[2:])
    assert await wiring.views.load(("chat_room", "hole")) is None


async def test_concurrent_writers_never_move_a_view_backwards(wiring: Wiring) -> None:
    events = await wiring.store(room_events("race", CONVERSATION * 3))
    second = ProjectionRunner(
        CHAT_MESSAGES, views=wiring.views, events=wiring.events, metrics=create_metrics()
    )
    rng = random.Random(7)
    cuts = sorted(rng.sample(range(1, len(events)), 5))
    chunks = [events[i:j] for i, j in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    # Two workers (a rebalance, a zombie) each apply every chunk, interleaved.
    await asyncio.gather(
        *(wiring.runner.handle(chunk) for chunk in chunks),
        *(second.handle(chunk) for chunk in reversed(chunks)),
    )
    doc = await wiring.views.load(("chat_room", "race"))
    assert doc is not None
    assert (doc.version, doc.view["messages"]) == await wiring.truth("race")

    stale = ViewDoc("chat_room", "race", doc.version - 3, {"messages": []}, doc.generation)
    assert not await wiring.views.write(stale, replace(stale, version=doc.version + 1))
    assert not await wiring.views.write(None, stale)  # exists already
    # Same version, other generation: a writer that read the view before a rebuild swapped it.
    before_swap = replace(doc, generation="older")
    assert not await wiring.views.write(before_swap, replace(doc, version=doc.version + 1))
    assert await wiring.views.load(("chat_room", "race")) == doc


async def test_rebuild_equals_the_live_view_while_writes_continue(wiring: Wiring) -> None:
    rooms = [f"r{i}" for i in range(40)]
    last = dict.fromkeys(rooms, len(CONVERSATION))
    history = [e for room in rooms for e in room_events(room, CONVERSATION)]
    await wiring.runner.handle(await wiring.store(history))
    # A view computed wrongly (say, by a bug since fixed): the rebuild must recompute it.
    wrong = await wiring.views.load(("chat_room", "r0"))
    assert wrong is not None
    await wiring.views.write(wrong, replace(wrong, view={**wrong.view, "messages": []}))
    await wiring.views.collection.insert_one(
        {"_id": "chat_room:ghost", "aggregate_type": "chat_room", "aggregate_id": "ghost",
         "version": 1, "generation": "live", "view": {"messages": []}}
    )  # fmt: skip

    rebuilding = asyncio.Event()
    overlapped = asyncio.Event()  # the rebuild's staging writes wait for live writes: overlap
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
            if len(during) >= 5:
                overlapped.set()
            await asyncio.sleep(0)
        overlapped.set()

    progress: list[tuple[int, int]] = []

    def record(done: int, total: int) -> None:
        rebuilding.set()
        progress.append((done, total))

    traffic = asyncio.create_task(live_traffic())
    built = await rebuild_views(
        CHAT_MESSAGES,
        events=wiring.events,
        views=wiring.views,
        staging=HeldStaging(MongoViewStaging(wiring.db, CHAT_MESSAGES.collection), overlapped),
        metrics=wiring.metrics,
        progress=record,
        chunk=2,
    )
    rebuilding.clear()
    await traffic
    assert len(during) >= 5, f"only {len(during)} live writes overlapped the rebuild"
    assert built >= len(rooms)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert progress[-1][0] == progress[-1][1] >= len(rooms) * len(CONVERSATION)

    # A view fed only live, from scratch, in order: what the rebuilt one must equal.
    reference = wiring.runner_on("reference")
    for room in rooms:
        await reference.handle(await wiring.events.select(("chat_room", room)))
    for room in rooms:
        doc = await wiring.views.load(("chat_room", room))
        expected = await reference.views.load(("chat_room", room))
        assert doc is not None and expected is not None
        assert (doc.version, doc.view) == (expected.version, expected.view), room
        assert doc.version == last[room]
    assert await wiring.views.load(("chat_room", "ghost")) is None
    names = set(await wiring.db.list_collection_names())
    assert not any("rebuild" in name for name in names), names


async def test_rebuild_of_a_store_without_chat_events_leaves_an_empty_view(wiring: Wiring) -> None:
    progress: list[tuple[int, int]] = []
    built = await rebuild_views(
        CHAT_MESSAGES,
        events=wiring.events,
        views=wiring.views,
        staging=MongoViewStaging(wiring.db, CHAT_MESSAGES.collection),
        metrics=wiring.metrics,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert built == 0 and progress[-1] == (0, 0)
    assert await wiring.views.versions() == {}
    with pytest.raises(UnknownProjection, match="no projection is named 'chat'; known: chat_"):
        projection_named(chat_domains(), "chat")
