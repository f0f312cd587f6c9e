"""Chat rooms end to end: HTTP appends, the chat_messages projection, room queries, a live rebuild.

Runs its own fleet with ``EVENTFLEET_DOMAINS=workers.examples.domains:chat_domains`` (order + chat room).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from snapshot_rules.replay import replay
from tests.e2e.pipeline import Step, post_all
from tests.fleet import FleetProcess, running_fleet, wait_for
from tests.kafka_topics import read_until
from tests.waiting import within
from topics.envelope import decode, from_dict
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains.chat_room import reduce_chat_room


@pytest.fixture(scope="module")
async def chat_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    name = f"chat_{uuid.uuid4().hex[:8]}"
    chat = "workers.examples.domains:chat_domains"
    async with running_fleet(stack, name, EVENTFLEET_DOMAINS=chat) as process:
        yield process


def conversation(tag: str, n: int) -> list[Step]:
    """Sends from two people, edits of their own, deletes and an edit after one."""

    def send(i: int, who: str) -> Step:
        return ("MessageSent", {"message_id": f"{tag}{i}", "sender_id": who, "content": f"hi {i}"})

    def edit(i: int, who: str) -> Step:
        data = {"message_id": f"{tag}{i}", "sender_id": who, "content": f"hi {i}, edited"}
        return ("MessageEdited", data)

    steps: list[Step] = []
    for i in range(n):
        steps.append(send(i, "ann" if i % 2 else "bob"))
        if i % 3 == 1:
            steps.append(edit(i, "ann" if i % 2 else "bob"))  # each edits their own
    # ann changing bob's message is refused at the door (403) or, when it raced the send past
    # the door, at the store (forbidden_at_store): tests/e2e/test_identity.py.
    steps += [
        ("MessageDeleted", {"message_id": f"{tag}1", "sender_id": "ann"}),
        edit(1, "ann"),  # deleted: ignored
        ("MessageDeleted", {"message_id": f"{tag}404", "sender_id": "ann"}),  # unknown: ignored
    ]
    return steps


async def view_reached(fleet: FleetProcess, room: str, version: int) -> None:
    async def caught_up() -> bool:
        status, body = await fleet.get(f"/v1/rooms/{room}/messages?limit=1")
        return status == 200 and body["version"] == version

    await wait_for(caught_up, timeout_s=30, what=f"the view of {room} at version {version}")


async def replayed_here(fleet: FleetProcess, room: str) -> tuple[int, list[Any]]:
    """Replay in the test, from the events the fleet serves."""
    status, body = await fleet.get(f"/v1/chat_room/{room}/events?limit=1000")
    assert status == 200
    folded = replay(reduce_chat_room, [from_dict(e) for e in body["events"]])
    assert folded.state is not None
    return folded.version, folded.state["messages"]


async def test_room_views_follow_the_stream_and_agree_with_replay(chat_fleet: FleetProcess) -> None:
    run = uuid.uuid4().hex[:6]
    rooms = {f"room-{run}-{i}": conversation(f"m{i}-", 8 + 4 * i) for i in range(3)}
    await asyncio.gather(*(post_all(chat_fleet, room, steps) for room, steps in rooms.items()))
    await asyncio.gather(*(view_reached(chat_fleet, r, len(s)) for r, s in rooms.items()))

    for room, steps in rooms.items():
        version, messages = await replayed_here(chat_fleet, room)
        assert version == len(steps)
        ids = [m["message_id"] for m in messages]
        assert ids[:2] == [f"{ids[0][:-1]}0", f"{ids[0][:-1]}2"]  # m1 was deleted
        assert messages[0]["content"] == "hi 0" and not messages[0]["edited"]  # foreign edit
        for query in ("limit=3", f"limit=2&before={ids[-2]}", "limit=1000"):
            _, view = await chat_fleet.get(f"/v1/rooms/{room}/messages?{query}")
            _, replayed = await chat_fleet.get(f"/v1/rooms/{room}/messages?{query}&source=replay")
            assert view["messages"] == replayed["messages"], (room, query)
            assert view["version"] == replayed["version"] == version
        _, newest = await chat_fleet.get(f"/v1/rooms/{room}/messages?limit=3")
        assert newest["messages"] == messages[-3:]

    room = next(iter(rooms))
    status, body = await chat_fleet.get(f"/v1/chat_room/{room}/events?limit=1000")
    events = [from_dict(e) for e in body["events"]]
    moment = events[2].occurred_at
    as_of = body["events"][2]["occurred_at"]  # "...Z": a "+" would need escaping in a query
    status, then = await chat_fleet.get(f"/v1/rooms/{room}/messages?as_of={as_of}")
    past = replay(reduce_chat_room, [e for e in events if e.occurred_at <= moment])
    assert status == 200 and then["source"] == "replay" and past.state is not None
    assert (then["version"], then["messages"]) == (past.version, past.state["messages"])

    records = await read_until(
        chat_fleet.env["EVENTFLEET_KAFKA_URL"], f"{chat_fleet.prefix}chat", expect=0, settle_s=1
    )
    routed = [decode(r.value) for r in records]
    assert sum(1 for e in routed if e.aggregate_id in rooms) == sum(map(len, rooms.values()))
    _, metrics = await chat_fleet.get("/metrics")
    assert 'eventfleet_projection_events_total{outcome="applied",projection="chat_messages"}' in (
        metrics
    )
    assert 'eventfleet_projection_lag_events{partition="' in metrics


async def test_bad_room_queries_and_requests_get_clear_errors(chat_fleet: FleetProcess) -> None:
    room = f"bad-{uuid.uuid4().hex[:8]}"
    status, body = await chat_fleet.get(f"/v1/rooms/{room}/messages")
    assert (status, body["error"]) == (404, "not_found")
    status, body = await chat_fleet.get(f"/v1/rooms/{room}/messages?source=replay")
    assert status == 404
    edit = {"message_id": "m1", "sender_id": "ann", "content": "x"}
    ann = chat_fleet.token("ann", ())
    status, body = await chat_fleet.post(
        f"/v1/chat_room/{room}/events", {"type": "MessageEdited", "data": edit}, token=ann
    )
    assert (status, body["error"]) == (409, "transition_rejected")
    status, body = await chat_fleet.post(
        f"/v1/chat_room/{room}/events",
        {"type": "MessageSent", "data": {"message_id": "m1"}},  # the sender comes from the token
        token=ann,
    )
    assert (status, body["error"]) == (422, "invalid_data")
    assert "content" in body["message"]
    steps = conversation("m", 2)
    await post_all(chat_fleet, room, steps)
    await view_reached(chat_fleet, room, len(steps))  # a 202 is an early answer: wait for the store
    for query, reason in (
        ("limit=0", "limit='0'"),
        ("source=cache", "source='cache'"),
        ("before=nope", "before='nope' is not among the room's newest"),
        ("before_version=x", "before_version='x'"),
        ("as_of=yesterday", "as_of"),
        ("source=view&as_of=2026-01-01T00:00:00Z", "answered from replay"),
    ):
        status, body = await chat_fleet.get(f"/v1/rooms/{room}/messages?{query}")
        assert (status, body["error"]) == (400, "bad_request"), query
        assert reason in body["message"], (query, body)


async def rebuild_cli(fleet: FleetProcess, name: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "projections", "rebuild", name,
        env={**os.environ, **fleet.env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await within(process.communicate(), timeout_s=60, what=f"the rebuild of {name}")
    return process.returncode or 0, out.decode(), err.decode()


async def test_rebuild_runs_next_to_the_fleet_and_equals_the_live_view(
    chat_fleet: FleetProcess,
) -> None:
    run = uuid.uuid4().hex[:6]
    rooms = {f"rb-{run}-{i}": conversation(f"r{i}-", 10) for i in range(4)}
    first = {room: steps[: len(steps) // 2] for room, steps in rooms.items()}
    await asyncio.gather(*(post_all(chat_fleet, r, s) for r, s in first.items()))
    await asyncio.gather(*(view_reached(chat_fleet, r, len(s)) for r, s in first.items()))

    # The rest of the conversation, and more, arrives for as long as the rebuild runs.
    rest = {room: steps[len(steps) // 2 :] for room, steps in rooms.items()}
    rebuilding = asyncio.create_task(rebuild_cli(chat_fleet, "chat_messages"))
    extra = 0
    while not rebuilding.done() and extra < 300:
        room = list(rooms)[extra % len(rooms)]
        step = ("MessageSent", {"message_id": f"x{extra}", "sender_id": "dan", "content": "more"})
        await post_all(chat_fleet, room, [step])
        rooms[room].append(step)
        extra += 1
    await asyncio.gather(*(post_all(chat_fleet, r, s) for r, s in rest.items()))
    code, out, err = await rebuilding
    assert code == 0, err
    assert extra > 0, "nothing was appended while the rebuild ran"
    assert "rebuilding chat_messages:" in err and "(100%)" in err
    assert out.startswith("rebuilt chat_messages: ")

    await asyncio.gather(*(view_reached(chat_fleet, r, len(s)) for r, s in rooms.items()))
    for room in rooms:
        version, messages = await replayed_here(chat_fleet, room)
        _, view = await chat_fleet.get(f"/v1/rooms/{room}/messages?limit=1000")
        assert (view["version"], view["messages"]) == (version, messages), room

    code, _, err = await rebuild_cli(chat_fleet, "no_such_view")
    assert code != 0 and "no_such_view" in err
