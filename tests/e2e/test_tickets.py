"""Tickets and credential expiry end to end, as an attacker and as a browser would use them.

Two fleet processes on one stack behind no shared memory but the marker's Redis: a ticket
asked at one opens a live connection at the other, once. Every bad ticket is refused with its
own 4xx and changes nothing (the good ticket still opens its route afterwards, nothing is
stored). A connection opened with a token or a ticket ends when that credential expires, with
the position to resume from. No ticket lands in either process's log.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.live_clients import chat, sse
from tests.fleet import FleetProcess, running_fleet
from tests.tokens import bearer
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack

ISSUED: list[str] = []
"""Every ticket this module was given: none may appear in a log line."""


@pytest.fixture(scope="module")
async def pair(stack: EmbeddedStack) -> AsyncIterator[tuple[FleetProcess, FleetProcess]]:
    """``a`` runs every role, ``b`` takes commands and serves reads; debug logs, no leeway."""
    name = f"tickets_{uuid.uuid4().hex[:8]}"
    env = {"EVENTFLEET_AUTH_LEEWAY_S": "0", "EVENTFLEET_LOG_LEVEL": "debug",
           "EVENTFLEET_LIVE_HEARTBEAT_S": "1"}  # fmt: skip
    async with running_fleet(stack, name, issuer=None, **env) as a:
        async with running_fleet(stack, name, roles="commands", issuer=None, **env) as b:
            yield a, b
            for process in (a, b):  # all the module's tests made them write
                text = process.log_path.read_text(errors="replace")
                leaked = [t for t in ISSUED if t in text]
                assert not leaked, f"{len(leaked)} tickets in the log of {process.url}"
                assert len(text) > 0


async def ticket(process: FleetProcess, route: str, *, token: str | None = None) -> dict[str, Any]:
    status, body = await process.request(
        "POST", "/v1/tickets", raw=orjson.dumps({"route": route}),
        headers={**bearer(token or process.token()), "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 201, body
    ISSUED.append(body["ticket"])
    return dict(body)


async def refused(process: FleetProcess, path: str, **headers: str) -> tuple[int, Any]:
    """An SSE GET of ``path``: its status and JSON body (the refusals answer before streaming)."""
    reader = await sse(process.url + path, headers=headers)
    await reader.close()
    return reader.status or 0, reader.body


async def opens(process: FleetProcess, path: str) -> bool:
    reader = await sse(process.url + path)
    await reader.close()
    return reader.status == 200


async def post_order(process: FleetProcess, order_id: str, *, token: str | None = None) -> None:
    status, body = await process.post(f"/v1/order/{order_id}/events", {
        "type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 1, "price": 2.5}]},
    }, token=token)  # fmt: skip
    assert status == 202, body


async def test_a_ticket_asked_at_one_process_opens_a_chat_socket_at_another_once(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    a, b = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    route = f"/v1/rooms/{room}/ws"
    asked = await ticket(a, route, token=a.token("alice"))
    assert asked["principal"] == "alice" and asked["route"] == route
    url = f"{b.url.replace('http', 'ws')}{route}?ticket={asked['ticket']}"
    client = await chat(url, headers={"Origin": b.url})
    try:
        await client.send({"command_id": "c1", "type": "MessageSent",
                           "data": {"message_id": "m1", "content": "hi"}})  # fmt: skip
        await wait_for(lambda: client.answer("c1") is not None, timeout_s=30, what="the answer")
        assert client.answer("c1")["status"] == 202  # type: ignore[index]
        await wait_for(lambda: client.versions() == [1], timeout_s=30, what="the stored event")
        event = client.of_kind("event")[0]["event"]
        assert event["data"]["sender_id"] == "alice"
        assert event["metadata"]["actor"]["principal"] == "alice"
    finally:
        await client.close()
    for process in (a, b):  # spent fleet-wide, at either process
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await session.ws_connect(f"{process.url.replace('http', 'ws')}{route}?ticket="
                                         f"{asked['ticket']}", headers={"Origin": process.url})  # fmt: skip
            assert e.value.status == 401
        status, body = await refused(process, f"{route}?ticket={asked['ticket']}")
        assert (status, body["reason"]) == (401, "ticket_used"), body


async def test_every_bad_ticket_is_refused_and_changes_nothing(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    a, b = pair
    order = f"o-{uuid.uuid4().hex[:6]}"
    await post_order(a, order)
    route = f"/v1/order/{order}/subscribe"
    good = (await ticket(a, route, token=a.token("alice")))["ticket"]
    other = f"/v1/order/{order}-x/subscribe"
    cases: list[tuple[str, str, dict[str, str], int, str]] = [
        ("missing", route, {}, 401, "missing_token"),
        ("empty", f"{route}?ticket=", {}, 401, "missing_ticket"),
        # A parameter given twice is refused before the door reads it, on every route.
        ("two", f"{route}?ticket={good}&ticket={good}", {}, 400, "ticket"),
        ("oversized", f"{route}?ticket={'A' * 129}", {}, 401, "ticket_too_large"),
        ("malformed", f"{route}?ticket=abc%24%25", {}, 401, "malformed_ticket"),
        ("forged", f"{route}?ticket={secrets.token_urlsafe(32)}", {}, 401, "unknown_ticket"),
        ("another route", f"{other}?ticket={good}", {}, 403, "ticket_other_route"),
        ("another principal", f"{route}?ticket={good}", bearer(a.token("bob")), 403,
         "ticket_other_principal"),
    ]  # fmt: skip
    for name, path, headers, status, reason in cases:
        for process in (a, b):
            got, body = await refused(process, path, **headers)
            if status == 400:
                assert (got, body["error"]) == (400, "bad_request"), (name, body)
                assert reason in body["message"], (name, body)
                continue
            assert (got, body["error"], body["reason"]) == (
                status, "unauthenticated" if status == 401 else "forbidden", reason
            ), (name, body)  # fmt: skip
            assert body["message"].endswith("."), body
    # A ticket cannot buy a ticket, nor post anything.
    status, body = await b.request(
        "POST", f"/v1/tickets?ticket={good}", raw=orjson.dumps({"route": route}),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (status, body["reason"]) == (403, "ticket_other_route"), body
    status, body = await b.request(
        "POST", f"/v1/order/{order}/events?ticket={good}", {"type": "OrderPaid", "data": {}},
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (status, body["reason"]) == (403, "ticket_other_route"), body
    status, body = await a.get(f"/v1/order/{order}/events?min_version=1&wait_ms=20000")
    assert status == 200 and len(body["events"]) == 1, body
    # None of that spent it: it opens its route once, at the other process, as alice.
    assert await opens(b, f"{route}?ticket={good}")
    status, body = await refused(a, f"{route}?ticket={good}")
    assert (status, body["reason"]) == (401, "ticket_used"), body


async def test_an_expired_ticket_is_refused(pair: tuple[FleetProcess, FleetProcess]) -> None:
    a, b = pair
    order = f"o-{uuid.uuid4().hex[:6]}"
    route = f"/v1/order/{order}/subscribe"
    short = a.issuer.token("alice", (), exp=int(time.time()) + 2)  # the ticket ends with it
    asked = await ticket(a, route, token=short)
    assert asked["expires_at"] == asked["credential_expires_at"]
    ends = time.time() + 2.5
    await wait_for(lambda: time.time() > ends, timeout_s=10, what="the ticket's expiry")
    status, body = await refused(b, f"{route}?ticket={asked['ticket']}")
    assert (status, body["reason"]) == (401, "ticket_expired"), body


async def test_bad_ticket_requests_are_refused(pair: tuple[FleetProcess, FleetProcess]) -> None:
    a, _ = pair
    json = {"Content-Type": "application/json"}
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("not json", b"route", json, 400, "bad_request"),
        ("no route", b"{}", json, 400, "bad_request"),
        ("another field", b'{"route": "/v1/order/o-1/subscribe", "principal": "bob"}', json,
         400, "bad_request"),
        ("not a live route", b'{"route": "/v1/order/o-1/events"}', json, 400, "bad_request"),
        ("a query", b'{"route": "/v1/order/o-1/subscribe?after_version=1"}', json, 400,
         "bad_request"),
        ("a traversal", b'{"route": "/v1/order/../subscribe"}', json, 400, "bad_request"),
        ("not a string", b'{"route": 7}', json, 400, "bad_request"),
        ("text/plain", b'{"route": "/v1/order/o-1/subscribe"}', {"Content-Type": "text/plain"},
         415, "unsupported_media_type"),
        ("oversized", b'{"route": "' + b"a" * 5000 + b'"}', json, 413, "payload_too_large"),
    ]  # fmt: skip
    for name, raw, headers, status, code in cases:
        got, body = await a.request("POST", "/v1/tickets", raw=raw,
                                    headers={**bearer(a.token()), **headers})  # fmt: skip
        assert (got, body["error"]) == (status, code), (name, body)
    got, body = await a.request("POST", "/v1/tickets", raw=b'{"route": "/v1/rooms/x/ws"}',
                                headers={"Content-Type": "application/json"})  # fmt: skip
    assert (got, body["reason"]) == (401, "missing_token"), body
    got, body = await a.request(  # the console's route takes the session from its own pages only
        "POST", "/console/tickets", raw=b'{"route": "/v1/rooms/x/ws"}',
        headers={**bearer(a.token()), **json, "Origin": "https://evil.example",
                 "Sec-Fetch-Site": "cross-site"},
    )  # fmt: skip
    assert (got, body["error"]) == (403, "cross_origin"), body


async def test_an_sse_stream_ends_when_its_token_expires_with_the_position(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    a, b = pair
    order = f"o-{uuid.uuid4().hex[:6]}"
    await post_order(a, order)
    short = a.issuer.token("alice", (), exp=int(time.time()) + 3)
    reader = await sse(f"{b.url}/v1/order/{order}/subscribe", headers=bearer(short))
    try:
        assert reader.status == 200
        await wait_for(lambda: reader.versions() == [1], timeout_s=30, what="the catch-up")
        await wait_for(lambda: reader.closed, timeout_s=15, what="the stream's end at exp")
        last = reader.messages[-1]
        assert last.event == "credential_expired" and last.id == "1", last
        assert last.data["after_version"] == 1 and "sign in again" in last.data["message"]
    finally:
        await reader.close()
    # After it, the token opens nothing.
    status, body = await refused(b, f"/v1/order/{order}/subscribe", **bearer(short))
    assert (status, body["reason"]) == (401, "expired"), body


async def test_a_chat_socket_opened_with_a_ticket_closes_when_its_token_expires(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    a, b = pair
    room = f"r-{uuid.uuid4().hex[:6]}"
    route = f"/v1/rooms/{room}/ws"
    short = a.issuer.token("alice", (), exp=int(time.time()) + 4)
    asked = await ticket(a, route, token=short)
    client = await chat(f"{b.url.replace('http', 'ws')}{route}?ticket={asked['ticket']}",
                        headers={"Origin": b.url})  # fmt: skip
    try:
        await client.send({"command_id": "c1", "type": "MessageSent",
                           "data": {"message_id": "m1", "content": "before"}})  # fmt: skip
        await wait_for(lambda: client.versions() == [1], timeout_s=30, what="the message stored")
        await wait_for(lambda: client.ws.closed, timeout_s=15, what="the socket's close at exp")
        assert client.ws.close_code == 4401
        last = client.received[-1]
        assert (last["kind"], last["error"], last["after_version"]) == (
            "error", "credential_expired", 1
        ), last  # fmt: skip
    finally:
        await client.close()
    status, body = await a.get(f"/v1/chat_room/{room}/events")
    assert status == 200 and len(body["events"]) == 1, body


async def test_a_websocket_subscription_closes_at_expiry_with_code_and_reason(
    pair: tuple[FleetProcess, FleetProcess],
) -> None:
    a, b = pair
    order = f"o-{uuid.uuid4().hex[:6]}"
    await post_order(a, order)
    short = a.issuer.token("alice", (), exp=int(time.time()) + 3)
    received: list[Any] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(
            f"{b.url.replace('http', 'ws')}/v1/order/{order}/subscribe",
            headers={**bearer(short), "Origin": b.url},
        ) as ws:  # fmt: skip
            async for message in ws:  # until the server closes it
                if message.type == aiohttp.WSMsgType.TEXT:
                    received.append(orjson.loads(message.data))
            assert ws.close_code == 4401
    assert [m.get("version") for m in received[:-1]] == [1]
    assert (received[-1]["error"], received[-1]["after_version"]) == ("credential_expired", 1)


async def test_a_principal_past_its_share_of_tickets_is_told_429_and_others_are_not(
    stack: EmbeddedStack,
) -> None:
    """EVENTFLEET_TICKETS_PER_PRINCIPAL bounds what one principal holds in Redis: past it, the
    request is 429 too_many_tickets with Retry-After, nothing is stored for it, and another
    principal still gets its own."""
    env = {"EVENTFLEET_TICKETS_PER_PRINCIPAL": "3"}
    async with running_fleet(stack, f"tk_{uuid.uuid4().hex[:8]}", **env) as process:
        route = "/v1/order/o-1/subscribe"
        mine = process.token("greedy")
        for _ in range(3):
            await ticket(process, route, token=mine)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{process.url}/v1/tickets", data=orjson.dumps({"route": route}),
                headers={**bearer(mine), "Content-Type": "application/json"},
            ) as answer,
        ):  # fmt: skip
            body = orjson.loads(await answer.read())
            assert (answer.status, body["error"]) == (429, "too_many_tickets"), body
            assert answer.headers["Retry-After"] == str(body["retry_after_s"])
        assert (await ticket(process, route, token=process.token("modest")))["ticket"]
