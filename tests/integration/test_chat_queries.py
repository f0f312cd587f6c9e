"""Room queries on the real MongoDB protocol: view and replay agree; windows, time travel, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from snapshot_rules.domain import Domains
from snapshot_rules.replay import replay
from tests.chat_events import CONVERSATION, T0, room_events
from topics.envelope import Event
from workers.adapters.mongo import (
    MongoEventStore,
    MongoSnapshotStore,
    MongoViewStore,
    connect,
    database,
)
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains import chat_domains
from workers.examples.domains.chat_room import (
    CHAT_MESSAGES,
    CHAT_ROOM,
    ROOM_MESSAGES,
    chat_room_domain,
    reduce_chat_room,
)
from workers.examples.domains.order import ORDER
from workers.http.queries import FleetQueries, answer
from workers.metrics import create_metrics
from workers.roles.read.projections import ProjectionRunner
from workers.roles.state import StateLoader
from workers.runtime.answers import Answer


@dataclass
class ChatQueries:
    """The room route as the fleet serves it, over a context of the test's own stores."""

    views: MongoViewStore
    loader: StateLoader
    events: MongoEventStore
    domains: Domains

    async def messages(self, room: str, query: dict[str, str]) -> Answer:
        context = FleetQueries(
            domains=self.domains,
            loader=self.loader,
            events=self.events,
            views={CHAT_MESSAGES.name: self.views},
        )
        return await answer(ROOM_MESSAGES, context, {"room_id": room}, query)


@dataclass
class Rooms:
    """Queries over a database of the test's own, and the pieces to fill it."""

    queries: ChatQueries
    events: MongoEventStore
    runner: ProjectionRunner
    loader: StateLoader

    async def ask(self, room: str, **query: str) -> tuple[int, Any]:
        answer = await self.queries.messages(room, query)
        return answer.status, answer.body

    def with_domains(self, domains: Domains) -> ChatQueries:
        return ChatQueries(
            views=self.runner.views, loader=self.loader, events=self.events, domains=domains
        )


@pytest.fixture
async def rooms(stack: EmbeddedStack, unique_name: str) -> AsyncIterator[Rooms]:
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    db = database(client, unique_name)
    events = MongoEventStore(db)
    await events.ensure_indexes()
    metrics = create_metrics()
    loader = StateLoader(events, MongoSnapshotStore(db), metrics, tail_threshold=5)
    views = MongoViewStore(db, CHAT_MESSAGES.collection)
    runner = ProjectionRunner(CHAT_MESSAGES, views=views, events=events, metrics=metrics)
    queries = ChatQueries(views=views, loader=loader, events=events, domains=chat_domains())
    try:
        yield Rooms(queries, events, runner, loader)
    finally:
        await loader.drain()
        await client.drop_database(unique_name)
        await client.close()


def chatter(n: int) -> list[tuple[str, str, str]]:
    """n messages from two senders, with edits, a foreign edit and deletes mixed in."""
    ops: list[tuple[str, str, str]] = []
    for i in range(n):
        ops.append(("MessageSent", f"m{i}", "ann" if i % 2 else "bob"))
        if i % 4 == 1:
            ops.append(("MessageEdited", f"m{i}", "ann"))
        if i % 5 == 3:
            ops.append(("MessageDeleted", f"m{i - 1}", "ann" if (i - 1) % 2 else "bob"))
    return [*ops, ("MessageEdited", "m0", "ann")]  # m0 is bob's: ignored


async def test_view_and_replay_answer_the_same_window(rooms: Rooms) -> None:
    events = room_events("lobby", chatter(30))
    await rooms.events.append(events)
    await rooms.runner.handle(events)
    folded = replay(reduce_chat_room, events)
    assert folded.state is not None
    everything = folded.state["messages"]

    for query in ({}, {"limit": "5"}, {"limit": "4", "before": everything[-6]["message_id"]}):
        view_status, view = await rooms.ask("lobby", **query)
        replay_status, replayed = await rooms.ask("lobby", source="replay", **query)
        assert (view_status, replay_status) == (200, 200)
        assert view["messages"] == replayed["messages"], query
        assert view["version"] == replayed["version"] == len(events)
        assert (view["source"], replayed["source"]) == ("view", "replay")
    _, newest = await rooms.ask("lobby", limit="5")
    assert newest["messages"] == everything[-5:]
    _, page = await rooms.ask("lobby", limit="4", before=everything[-6]["message_id"])
    assert page["messages"] == everything[-10:-6]
    assert all(
        set(m) >= {"message_id", "sender_id", "content", "sent_at", "edited"}
        for m in page["messages"]
    )
    # The replayed tail was longer than the threshold: the query saved a snapshot on the way.
    await rooms.loader.drain()
    snapshot = await rooms.loader.snapshots.load(("chat_room", "lobby"))
    assert snapshot is not None and snapshot.version == len(events)
    _, again = await rooms.ask("lobby", source="replay")
    assert again["messages"] == everything[-100:]


async def test_as_of_answers_the_room_as_it_was(rooms: Rooms) -> None:
    events = room_events("past", CONVERSATION)
    await rooms.events.append(events)
    moment = events[2].occurred_at  # after ann's edit of m1, before anything else
    status, body = await rooms.ask("past", as_of=moment.isoformat())
    expected = replay(reduce_chat_room, events[:3]).state
    assert status == 200 and expected is not None
    assert (body["version"], body["messages"]) == (3, expected["messages"])
    assert body["source"] == "replay"
    early = (T0 - timedelta(days=1)).isoformat()
    status, body = await rooms.ask("past", as_of=early)
    assert status == 404 and "no events at that point" in body["message"]
    status, body = await rooms.ask("past", as_of="yesterday")
    assert status == 400 and body["message"].startswith("query parameter as_of:")


async def test_a_room_without_its_view_is_answered_from_replay_and_unknown_rooms_are_404(
    rooms: Rooms,
) -> None:
    """A view the projection has not reached (or that was lost) never answers an empty room."""
    events: list[Event] = room_events("fresh", CONVERSATION[:2])
    await rooms.events.append(events)  # stored, not yet projected
    status, body = await rooms.ask("fresh")
    assert (status, body["version"], body["source"]) == (200, 2, "replay")
    assert len(body["messages"]) == 2
    status, body = await rooms.ask("fresh", source="replay")
    assert status == 200 and len(body["messages"]) == 2
    for source in ("view", "replay"):
        status, body = await rooms.ask("nobody-here", source=source)
        assert (status, body["error"]) == (404, "not_found"), source
        assert "chat room nobody-here has no events" in body["message"]


async def test_bad_parameters_are_400_with_the_reason(rooms: Rooms) -> None:
    await rooms.events.append(room_events("r", CONVERSATION[:2]))
    await rooms.runner.handle(await rooms.events.select(("chat_room", "r")))
    cases = [
        ({"limit": "-1"}, "limit='-1'"),
        ({"source": "both"}, "source='both'"),
        ({"before": "m404"}, "before='m404' is not among the room's newest"),
        ({"before_version": "0"}, "before_version='0'"),
        ({"source": "view", "as_of": T0.isoformat()}, "as_of is answered from replay"),
    ]
    for query, reason in cases:
        status, body = await rooms.ask("r", **query)
        assert (status, body["error"]) == (400, "bad_request"), query
        assert reason in body["message"]
    status, body = await rooms.ask("not a room!")
    assert status == 400 and "room id" in body["message"]


async def test_replay_without_the_chat_domain_enabled_is_404(rooms: Rooms) -> None:
    queries = rooms.with_domains(Domains([ORDER]))
    answer = await queries.messages("r", {"source": "replay"})
    assert answer.status == 404 and answer.body["error"] == "unknown_aggregate_type"
    assert CHAT_ROOM.name in answer.body["message"]


async def test_a_room_longer_than_its_window_pages_back_through_the_store(
    rooms: Rooms,
) -> None:
    small = chat_room_domain(window=5)
    events = room_events("long", chatter(60))
    await rooms.events.append(events)
    runner = ProjectionRunner(
        small.projections[0],
        views=rooms.runner.views,
        events=rooms.events,
        metrics=create_metrics(),
    )
    await runner.handle(events)
    context = FleetQueries(
        domains=Domains([small]), loader=rooms.loader, events=rooms.events,
        views={"chat_messages": rooms.runner.views},
    )  # fmt: skip
    unbounded = replay(chat_room_domain(window=1000).reducer, events).state
    assert unbounded is not None
    for source in ("view", "replay"):
        pages, cursor = [], None
        while True:
            query = {"limit": "7", "source": source}
            if cursor is not None:
                query["before_version"] = str(cursor)
            got = await answer(small.queries[0], context, {"room_id": "long"}, query)
            assert got.status == 200, got.body
            pages.append(got.body["messages"])
            cursor = got.body["before_version"]
            if cursor is None:
                break
        assert [m for page in reversed(pages) for m in page] == unbounded["messages"], source
        assert len(pages) > 3  # most pages came from the store, walking backwards
