"""Live subscriptions end to end: two fleet processes on one stack, events written through one
and streamed by the other (SSE and WebSocket), catch-up then live, resumed by Last-Event-ID,
each exactly as ``/events`` returns it; the refusals a client can provoke."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.e2e.live_clients import chat, sse, websocket
from tests.fleet import FleetProcess, running_fleet
from tests.tokens import bearer
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack


@pytest.fixture(scope="module")
async def pair(stack: EmbeddedStack) -> AsyncIterator[tuple[FleetProcess, FleetProcess]]:
    """``writer`` runs every role; ``reader`` only takes commands and serves reads, with low
    live limits, on the same topics and database."""
    name = f"live_{uuid.uuid4().hex[:8]}"
    async with running_fleet(stack, name) as writer:
        async with running_fleet(
            stack, name, roles="commands",
            EVENTFLEET_LIVE_MAX_PER_PRINCIPAL="3", EVENTFLEET_LIVE_HEARTBEAT_S="1",
        ) as reader:  # fmt: skip
            yield writer, reader


async def say(process: FleetProcess, room: str, n: int) -> None:
    status, body = await process.post(f"/v1/chat_room/{room}/events", {
        "type": "MessageSent",
        "data": {"message_id": f"m{n}", "sender_id": "ann", "content": f"hello {n}"},
    }, token=process.token("ann"))  # fmt: skip
    assert status == 202, body


async def stored(process: FleetProcess, room: str, count: int) -> list[Any]:
    async def enough() -> bool:
        status, body = await process.get(f"/v1/chat_room/{room}/events")
        return status == 200 and len(body["events"]) >= count

    await wait_for(enough, timeout_s=30, what=f"{count} events stored in {room}")
    return list((await process.get(f"/v1/chat_room/{room}/events"))[1]["events"])


async def open_connections(process: FleetProcess, expected: int = 0) -> bool:
    """Whether ``process`` serves ``expected`` live connections (a left client is noticed at
    its next write, the heartbeat at the latest)."""
    metrics = (await process.get("/metrics"))[1]
    gauges = [
        line for line in metrics.splitlines() if line.startswith("eventfleet_live_connections{")
    ]
    return sum(float(line.split()[-1]) for line in gauges) == expected


async def test_sse_catches_up_then_streams_what_another_process_stores(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    writer, reader = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    for n in range(1, 4):
        await say(writer, room, n)
    await stored(writer, room, 3)
    client = await sse(f"{reader.url}/v1/chat_room/{room}/subscribe?after_version=1",
                       headers=reader.auth_headers)  # fmt: skip
    try:
        assert client.status == 200
        await wait_for(lambda: client.versions() == [2, 3], timeout_s=10, what="the catch-up")
        for n in range(4, 7):
            await say(writer, room, n)
        await wait_for(lambda: len(client.versions()) == 5, timeout_s=30, what="live events")
        assert client.versions() == [2, 3, 4, 5, 6]
        assert [m.id for m in client.messages] == ["2", "3", "4", "5", "6"]
        as_read = await stored(writer, room, 6)
        assert [m.data for m in client.messages] == as_read[1:]  # exactly as /events has them
    finally:
        await client.close()


async def test_last_event_id_resumes_after_the_last_event_seen(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    writer, reader = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    for n in range(1, 5):
        await say(writer, room, n)
    await stored(writer, room, 4)
    url = f"{reader.url}/v1/chat_room/{room}/subscribe?after_version=0"
    client = await sse(
        url, headers={"Last-Event-ID": "2", **reader.auth_headers}
    )  # the header wins over the query
    try:
        await wait_for(lambda: client.versions() == [3, 4], timeout_s=10, what="the resume")
        await wait_for(lambda: client.comments >= 2, timeout_s=10, what="heartbeats")
        assert client.versions() == [3, 4]  # heartbeats repeat nothing
    finally:
        await client.close()


async def test_a_websocket_streams_the_same_events(pair: tuple[FleetProcess, FleetProcess]) -> None:
    writer, reader = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    await say(writer, room, 1)
    await stored(writer, room, 1)
    ws_url = reader.url.replace("http://", "ws://")
    client = await websocket(f"{ws_url}/v1/chat_room/{room}/subscribe",
                             headers=reader.auth_headers)  # fmt: skip
    try:
        assert client.status == 101
        await wait_for(lambda: client.versions() == [1], timeout_s=10, what="the catch-up")
        await say(reader, room, 2)  # written through the subscriber's own process too
        await wait_for(lambda: client.versions() == [1, 2], timeout_s=30, what="a live event")
        as_read = await stored(reader, room, 2)
        assert [m.data for m in client.messages] == as_read
    finally:
        await client.close()


async def test_what_a_client_can_get_wrong_is_refused_with_a_json_error(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    _, reader = pair
    cases = {
        "/v1/nope/x/subscribe": (404, "unknown_aggregate_type"),
        "/v1/chat_room/x/subscribe?after_version=-1": (400, "bad_request"),
        "/v1/chat_room/x/subscribe?after_version=1e3": (400, "bad_request"),
        "/v1/chat_room/b%20ad/subscribe": (400, "bad_request"),
    }
    for path, (status, code) in cases.items():
        client = await sse(f"{reader.url}{path}", headers=reader.auth_headers)
        await client.close()
        assert (client.status, client.body["error"]) == (status, code), path
    bad_resume = await sse(f"{reader.url}/v1/chat_room/x/subscribe",
                           headers={"Last-Event-ID": "abc", **reader.auth_headers})  # fmt: skip
    await bad_resume.close()
    assert (bad_resume.status, bad_resume.body["error"]) == (400, "bad_request")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{reader.url}/v1/chat_room/x/subscribe",
                               headers={"Accept": "application/json", **reader.auth_headers},
                               ) as response:  # fmt: skip
            assert response.status == 406
            assert (await response.json())["error"] == "not_acceptable"


async def test_a_client_past_its_limit_gets_429_and_its_others_keep_streaming(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    writer, reader = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    await wait_for(lambda: open_connections(reader), timeout_s=10,
                   what="the earlier tests' connections to be closed")  # fmt: skip
    url = f"{reader.url}/v1/chat_room/{room}/subscribe"
    held = [await sse(url, headers=reader.auth_headers) for _ in range(3)]
    try:
        assert [c.status for c in held] == [200, 200, 200]
        refused = await sse(url, headers=reader.auth_headers)
        await refused.close()
        assert refused.status == 429
        assert refused.body["error"] == "too_many_subscriptions"
        assert refused.body["limit"] == "principal"
        await say(writer, room, 1)
        await wait_for(lambda: all(c.versions() == [1] for c in held), timeout_s=30,
                       what="every held subscription to get the event")  # fmt: skip
    finally:
        for client in held:
            await client.close()
    await wait_for(lambda: open_connections(reader), timeout_s=10, what="closed ones released")
    again = await sse(url, headers=reader.auth_headers)  # released on close
    try:
        await wait_for(lambda: again.versions() == [1], timeout_s=10, what="a new subscription")
    finally:
        await again.close()
    metrics = (await reader.get("/metrics"))[1]
    assert 'eventfleet_live_refused_total{limit="principal"} 1.0' in metrics
    sent = [line for line in metrics.splitlines()
            if line.startswith('eventfleet_live_events_sent_total{kind="aggregate"}')]  # fmt: skip
    assert sent and float(sent[0].split()[-1]) >= 4


def sent_command(command_id: str, message_id: str, sender: str, text: str) -> dict[str, Any]:
    return {"command_id": command_id, "type": "MessageSent",
            "data": {"message_id": message_id, "sender_id": sender, "content": text}}  # fmt: skip


async def test_chat_over_websockets_on_two_processes_answers_and_streams_every_event(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    writer, reader = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    ann = await chat(f"{writer.url.replace('http', 'ws')}/v1/rooms/{room}/ws",
                     headers=bearer(writer.token("ann")))  # fmt: skip
    bob = await chat(f"{reader.url.replace('http', 'ws')}/v1/rooms/{room}/ws",
                     headers=bearer(reader.token("bob")))  # fmt: skip
    try:
        await ann.send(sent_command("c1", "m1", "ann", "hello bob"))
        await wait_for(lambda: ann.answer("c1") is not None, timeout_s=10, what="ann's answer")
        assert ann.answer("c1")["status"] == 202  # type: ignore[index]
        await wait_for(lambda: bob.versions() == [1], timeout_s=30, what="bob to see m1")
        await bob.send({"command_id": "c2", "type": "MessageRead",
                        "data": {"reader_id": "bob", "up_to_message_id": "m1"}})  # fmt: skip
        await bob.send({"command_id": "b1", "type": "MessageEdited",
                        "data": {"message_id": "m1", "content": "not mine"}})  # fmt: skip
        await wait_for(lambda: bob.answer("c2") is not None and bob.answer("b1") is not None,
                       timeout_s=10, what="bob's answers")  # fmt: skip
        assert bob.answer("c2")["status"] == 202  # type: ignore[index]
        refused = bob.answer("b1")
        assert refused is not None and (refused["status"], refused["body"]["error"]) == (
            403,
            "forbidden",
        )  # the token's principal, as on HTTP
        await ann.send({"command_id": "c3", "type": "MessageEdited",
                        "data": {"message_id": "m1", "content": "hi bob"}})  # fmt: skip
        await wait_for(lambda: ann.versions()[-1:] == [3], timeout_s=30, what="the edit")
        await ann.send({"command_id": "c4", "type": "MessageDeleted",
                        "data": {"message_id": "m1"}})  # fmt: skip
        for client in (ann, bob):
            await wait_for(lambda c=client: c.versions() == [1, 2, 3, 4], timeout_s=30,  # type: ignore[misc]
                           what="both to see all four events")  # fmt: skip
        types = [m["event"]["type"] for m in ann.of_kind("event")]
        assert types == ["MessageSent", "MessageRead", "MessageEdited", "MessageDeleted"]
        await wait_for(lambda: len(ann.of_kind("stored")) == 3, timeout_s=10, what="ann's notes")
        assert [(m["command_id"], m["version"]) for m in ann.of_kind("stored")] == [
            ("c1", 1),
            ("c3", 3),
            ("c4", 4),
        ]
        assert [(m["command_id"], m["version"]) for m in bob.of_kind("stored")] == [("c2", 2)]
        assert bob.of_kind("event")[0]["event"] == (await stored(writer, room, 4))[0]

        async def receipt_in_view() -> bool:
            status, body = await reader.get(f"/v1/rooms/{room}/messages")
            return status == 200 and body["reads"].get("bob", {}).get("up_to_message_id") == "m1"

        await wait_for(receipt_in_view, timeout_s=30, what="bob's receipt in the room's view")
    finally:
        await ann.close()
        await bob.close()


async def test_a_chat_socket_refuses_bad_commands_with_http_codes_and_keeps_serving(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    _, reader = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    ann = bearer(reader.token("ann"))
    client = await chat(f"{reader.url.replace('http', 'ws')}/v1/rooms/{room}/ws", headers=ann)
    try:
        await client.send({"type": "MessageSent", "data": {}})  # no command_id
        await client.send({"command_id": "x1", "type": "OrderPlaced", "data": {}})
        await client.send({"command_id": "x2", "type": "MessageSent", "data": {"message_id": "m"}})
        await client.send({"command_id": "x3", "type": "MessageEdited", "data": {
            "message_id": "m1", "sender_id": "ann", "content": "too early"}})  # fmt: skip
        await client.ws.send_str("not json")
        await client.ws.send_bytes(b"\x00")
        await client.send(sent_command("x4", "m1", "ann", "still here"))
        await wait_for(lambda: len(client.of_kind("answer")) == 7, timeout_s=30, what="7 answers")
        got = [(m["command_id"], m["status"], m["body"].get("error"))
               for m in client.of_kind("answer")]  # fmt: skip
        assert got == [
            (None, 400, "bad_request"),
            ("x1", 400, "bad_request"),
            ("x2", 422, "invalid_data"),
            ("x3", 409, "transition_rejected"),
            (None, 400, "bad_request"),
            (None, 400, "bad_request"),
            ("x4", 202, None),
        ]
        await wait_for(lambda: client.versions() == [1], timeout_s=30, what="the one stored event")
    finally:
        await client.close()
    resumed = await chat(f"{reader.url.replace('http', 'ws')}/v1/rooms/{room}/ws?after_version=1",
                         headers=ann)  # fmt: skip
    try:
        await resumed.send(sent_command("x5", "m2", "ann", "again"))
        await wait_for(lambda: resumed.versions() == [2], timeout_s=30, what="only what follows")
    finally:
        await resumed.close()
    status, body = await reader.get(f"/v1/rooms/{room}/ws")  # no upgrade
    assert (status, body["error"]) == (406, "not_acceptable")
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        await chat(f"{reader.url.replace('http', 'ws')}/v1/rooms/{room}/ws")  # no token
    assert anonymous.value.status == 401
    nobody = await sse(f"{reader.url}/v1/chat_room/{room}/subscribe")
    await nobody.close()
    assert (nobody.status, nobody.body["error"]) == (401, "unauthenticated")


async def test_a_room_view_streams_its_messages_as_they_change_from_a_position(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    writer, reader = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    for n in (1, 2):
        await say(writer, room, n)
    await stored(writer, room, 2)
    client = await sse(f"{reader.url}/v1/rooms/{room}/subscribe?after_version=1",
                       headers=reader.auth_headers)  # fmt: skip
    ann = writer.token("ann")
    try:
        assert client.status == 200
        await wait_for(lambda: len(client.messages) == 1, timeout_s=10, what="the catch-up")
        first = client.messages[0]
        assert first.id == "2" and [m["message_id"] for m in first.data["changed"]] == ["m2"]
        for body in (
            {"type": "MessageEdited", "data": {"message_id": "m1", "content": "changed"}},
            {"type": "MessageDeleted", "data": {"message_id": "m2"}},
        ):
            status, answer = await writer.post(f"/v1/chat_room/{room}/events", body, token=ann)
            assert status == 202, answer
        status, answer = await writer.post(f"/v1/chat_room/{room}/events", {
            "type": "MessageRead", "data": {"up_to_message_id": "m1"}
        }, token=writer.token("bob"))  # fmt: skip
        assert status == 202, answer
        await wait_for(lambda: len(client.messages) == 4, timeout_s=30, what="three changes")
        edit, delete, receipt = (m.data for m in client.messages[1:])
        assert edit["changed"][0]["content"] == "changed" and edit["changed"][0]["edited"]
        assert delete["removed"] == ["m2"] and delete["changed"] == []
        assert receipt["reads"]["bob"]["up_to_message_id"] == "m1"
        assert [m.id for m in client.messages] == ["2", "3", "4", "5"]
    finally:
        await client.close()
    too_far = await sse(f"{reader.url}/v1/rooms/{room}/subscribe?after_version=99",
                        headers=reader.auth_headers)  # fmt: skip
    await too_far.close()
    assert (too_far.status, too_far.body["error"]) == (404, "version_not_found")


async def test_a_whole_type_streams_every_rooms_events_and_resumes_from_its_position(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    writer, reader = pair
    rooms = [f"t-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for room in rooms:
        await say(writer, room, 1)
    for room in rooms:
        await stored(writer, room, 1)
    url = f"{reader.url}/v1/chat_room/subscribe"
    await wait_for(lambda: open_connections(reader), timeout_s=10, what="earlier ones released")
    client = await sse(url, headers=reader.auth_headers)
    try:
        assert client.status == 200

        def mine() -> list[tuple[str, int]]:
            return [(m.data["aggregate_id"], m.data["version"]) for m in client.messages
                    if m.data.get("aggregate_id") in rooms]  # fmt: skip

        await wait_for(lambda: len(mine()) == 3, timeout_s=30, what="the catch-up of three rooms")
        for room in rooms:
            await say(writer, room, 2)
        await wait_for(lambda: len(mine()) == 6, timeout_s=30, what="three live events")
        assert sorted(mine()) == sorted((r, v) for r in rooms for v in (1, 2))
        resume_from = next(m.id for m in client.messages if m.data.get("aggregate_id") in rooms)
    finally:
        await client.close()
    await wait_for(lambda: open_connections(reader), timeout_s=10, what="closed ones released")
    resumed = await sse(url, headers={"Last-Event-ID": str(resume_from), **reader.auth_headers})
    try:
        assert resumed.status == 200, resumed.body
        await wait_for(lambda: resumed.comments >= 2, timeout_s=30, what="the resume caught up")
        again = [(m.data["aggregate_id"], m.data["version"]) for m in resumed.messages
                 if m.data.get("aggregate_id") in rooms]  # fmt: skip
        assert len(again) == 5 and len(set(again)) == 5  # all but the first, each once
    finally:
        await resumed.close()
    for bad in ("0:1,0:2", "x"):
        refused = await sse(f"{url}?after={bad}", headers=reader.auth_headers)
        await refused.close()
        assert (refused.status, refused.body["error"]) == (400, "bad_request")
