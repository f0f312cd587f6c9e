"""Chat pages over the stores: the window, then older pages walked backwards from the event store."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.domain import Domain, Domains
from snapshot_rules.queries import QueryAnswer
from topics.envelope import Event, new_event
from topics.errors import InvalidInput, NotFound, StoreUnavailable
from workers.adapters.memory import (
    MemoryDatabase,
    MemoryEventStore,
    MemorySnapshotStore,
    MemoryViewStore,
)
from workers.examples.domains.chat_room import chat_room_domain
from workers.http.queries import FleetQueries
from workers.metrics import create_metrics
from workers.roles.read.projections import ProjectionRunner
from workers.roles.state import StateLoader

from .support import T0

ROOM = "r1"


@dataclass
class Room:
    """One room's events in memory stores, its view caught up, and the query over them."""

    domain: Domain
    context: FleetQueries
    events: MemoryEventStore

    async def ask(self, **query: Any) -> QueryAnswer:
        params = {k: str(v) for k, v in query.items()}
        return await self.domain.queries[0].handler(self.context, {"room_id": ROOM}, params)

    async def all_pages(self, *, limit: int, source: str) -> list[list[Any]]:
        pages, cursor = [], None
        while True:
            query: dict[str, Any] = {"limit": limit, "source": source}
            if cursor is not None:
                query["before_version"] = cursor
            body = (await self.ask(**query)).body
            pages.append(body["messages"])
            cursor = body["before_version"]
            if cursor is None:
                return pages


async def stored_room(events: list[Event], *, window: int) -> Room:
    domain = chat_room_domain(window=window)
    metrics = create_metrics()
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    await store.append(events)
    views = MemoryViewStore(MemoryDatabase(), "chat_messages")
    runner = ProjectionRunner(domain.projections[0], views=views, events=store, metrics=metrics)
    await runner.handle(events)
    loader = StateLoader(store, snapshots, metrics)
    context = FleetQueries(
        domains=Domains([domain]), loader=loader, events=store, views={"chat_messages": views}
    )
    return Room(domain, context, store)


def history(ops: list[tuple[str, int, str]]) -> list[Event]:
    """``(kind, message number, actor)``: message numbers make unique ids (clients use UUIDs)."""
    events = []
    for version, (kind, number, actor) in enumerate(ops, start=1):
        data: dict[str, Any] = {"message_id": f"m{number}", "sender_id": actor}
        if kind != "MessageDeleted":
            data["content"] = f"{kind} at {version}"
        elif actor == "mod":
            data["role"] = "moderator"
        at = T0 + timedelta(seconds=version)
        schema = 2 if kind == "MessageDeleted" else 1
        stamped = {"version": version, "occurred_at": at, "schema_version": schema}
        events.append(new_event("chat_room", ROOM, kind, data, **stamped))
    return events


def model(events: list[Event]) -> list[tuple[str, str, str, bool, int]]:
    """The whole room folded without a bound: what every page together must show."""
    live: dict[str, list[Any]] = {}
    gone: set[str] = set()
    for e in events:
        mid, d = e.data["message_id"], e.data
        if e.type == "MessageSent" and mid not in live and mid not in gone:
            live[mid] = [d["sender_id"], d["content"], False, e.version]
        elif e.type == "MessageEdited" and mid in live and live[mid][0] == d["sender_id"]:
            live[mid][1:3] = [d["content"], True]
        elif e.type == "MessageDeleted" and mid in live:
            if d["sender_id"] == live[mid][0] or d.get("role") == "moderator":
                del live[mid]
                gone.add(mid)
    return [(mid, *fields) for mid, fields in live.items()]  # type: ignore[misc]


def shape(messages: list[Any]) -> list[tuple[str, str, str, bool, int]]:
    return [(m["message_id"], m["sender_id"], m["content"], m["edited"], m["version"])
            for m in messages]  # fmt: skip


@st.composite
def room_ops(draw: st.DrawFn) -> list[tuple[str, int, str]]:
    """Sends of fresh ids; edits and deletes of sent (or never sent) ones by anyone."""
    ops: list[tuple[str, int, str]] = []
    sent = 0
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["MessageSent"] * 3 + ["MessageEdited", "MessageDeleted"]))
        actor = draw(st.sampled_from(["ann", "bob", "mod"]))
        if kind == "MessageSent":
            sent += 1
            ops.append((kind, sent, actor))
        else:
            ops.append((kind, draw(st.integers(1, sent + 1)), actor))
    return ops


@settings(max_examples=120, deadline=None)
@given(ops=room_ops(), window=st.integers(1, 6), limit=st.integers(1, 7),
       source=st.sampled_from(["view", "replay"]))  # fmt: skip
def test_the_pages_together_are_the_whole_room(
    ops: list[tuple[str, int, str]], window: int, limit: int, source: str
) -> None:
    events = history(ops)

    async def check() -> None:
        room = await stored_room(events, window=window)
        if not events:
            return
        pages = await room.all_pages(limit=limit, source=source)
        for page in pages[:-1]:
            assert len(page) == limit  # only the oldest page may be short
        assert all(len(page) <= limit for page in pages)
        together = [m for page in reversed(pages) for m in page]
        assert shape(together) == model(events)

    asyncio.run(check())


async def test_an_answer_says_its_version_and_the_next_pages_cursor() -> None:
    ops = [("MessageSent", n, "ann") for n in range(1, 8)]
    room = await stored_room(history(ops), window=3)
    newest = (await room.ask(limit=2)).body
    assert [m["message_id"] for m in newest["messages"]] == ["m6", "m7"]
    assert (newest["version"], newest["before_version"]) == (7, 6)
    crossing = (await room.ask(limit=3, before_version=6)).body  # m5 from the window, m3-m4 stored
    assert [m["message_id"] for m in crossing["messages"]] == ["m3", "m4", "m5"]
    last = (await room.ask(limit=5, before_version=3)).body
    assert [m["message_id"] for m in last["messages"]] == ["m1", "m2"]
    assert last["before_version"] is None
    by_id = (await room.ask(limit=1, before="m6")).body
    assert [m["message_id"] for m in by_id["messages"]] == ["m5"]


async def test_before_a_message_outside_the_window_names_before_version() -> None:
    ops = [("MessageSent", n, "ann") for n in range(1, 6)]
    room = await stored_room(history(ops), window=2)
    with pytest.raises(
        InvalidInput, match=r"before='m1' is not among the room's newest 2.*before_version"
    ):
        await room.ask(before="m1")


async def test_an_old_message_deleted_long_after_is_gone_from_its_page() -> None:
    ops = [("MessageSent", n, "ann") for n in range(1, 6)]
    ops += [("MessageEdited", 2, "ann"), ("MessageDeleted", 1, "bob"), ("MessageDeleted", 3, "ann")]
    room = await stored_room(history(ops), window=2)
    pages = await room.all_pages(limit=10, source="replay")
    assert [(m["message_id"], m["edited"]) for m in pages[0]] == [
        ("m1", False),  # bob may not delete ann's message
        ("m2", True),
        ("m4", False),
        ("m5", False),
    ]


async def test_as_of_pages_show_the_room_as_it_was() -> None:
    ops = [("MessageSent", n, "ann") for n in range(1, 6)] + [("MessageDeleted", 1, "ann")]
    events = history(ops)
    room = await stored_room(events, window=2)
    before_delete = events[4].occurred_at.isoformat().replace("+00:00", "Z")
    body = (await room.ask(limit=10, as_of=before_delete)).body
    assert body["version"] == 5
    assert [m["message_id"] for m in body["messages"]] == ["m1", "m2", "m3", "m4", "m5"]
    now = (await room.ask(limit=10, source="replay")).body
    assert [m["message_id"] for m in now["messages"]] == ["m2", "m3", "m4", "m5"]


async def test_an_unknown_room_is_not_found_and_a_store_outage_surfaces() -> None:
    room = await stored_room([], window=2)
    with pytest.raises(NotFound, match="chat room r1 has no events"):
        await room.ask()
    room.events.down()
    with pytest.raises(StoreUnavailable):
        await room.ask(source="replay")
