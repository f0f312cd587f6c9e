"""Paging over HTTP: /events and the room's messages say when more exist and link the next page."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson

from tests.fleet import FleetProcess, wait_for
from tests.tokens import TESTER

SENT = 130  # more than the default page of 100


async def get(fleet: FleetProcess, path: str) -> tuple[int, Any, str | None]:
    async with aiohttp.ClientSession() as session:
        async with session.get(fleet.url + path, headers=fleet.auth_headers) as r:
            return r.status, orjson.loads(await r.read()), r.headers.get("Link")


def next_path(link: str) -> str:
    assert link.endswith('>; rel="next"'), link
    return link[1 : link.index(">")]


async def send(fleet: FleetProcess, room: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        body = {"type": "MessageSent", "data": {"message_id": f"m{i}", "sender_id": TESTER,
                                                 "content": f"hello {i}"}}  # fmt: skip
        status, answer = await fleet.post(f"/v1/chat_room/{room}/events", body)
        assert status == 202, answer


async def stored(fleet: FleetProcess, room: str, n: int) -> None:
    async def there() -> bool:
        status, body, _ = await get(fleet, f"/v1/chat_room/{room}/state")
        return status == 200 and body["version"] == n

    await wait_for(there, timeout_s=60, what=f"{n} stored messages in {room}")


async def test_following_the_link_yields_every_event_once_even_while_appending(
    fleet: FleetProcess,
) -> None:
    room = f"page-{uuid.uuid4().hex[:8]}"
    await send(fleet, room, SENT)
    await stored(fleet, room, SENT)
    status, first, link = await get(fleet, f"/v1/chat_room/{room}/events")
    assert status == 200 and len(first["events"]) == 100  # the default page, and it says so
    assert first["more"] is True and first["next_after_version"] == 100 and link is not None
    await send(fleet, room, 10, start=SENT)  # appended between pages
    await stored(fleet, room, SENT + 10)
    versions = [e["version"] for e in first["events"]]
    while link is not None:
        status, page, link = await get(fleet, next_path(link))
        assert status == 200, page
        versions += [e["version"] for e in page["events"]]
        assert page["more"] is (link is not None)
    assert versions == list(range(1, SENT + 11))
    assert page["next_after_version"] == SENT + 10

    status, body, link = await get(fleet, f"/v1/chat_room/{room}/events?after_version={SENT + 10}")
    assert (status, body["events"], body["more"], link) == (200, [], False, None)


async def test_room_messages_page_backwards_with_more_and_a_link(fleet: FleetProcess) -> None:
    room = f"page-{uuid.uuid4().hex[:8]}"
    await send(fleet, room, SENT)
    await stored(fleet, room, SENT)

    async def view_caught_up() -> bool:
        status, body, _ = await get(fleet, f"/v1/rooms/{room}/messages?limit=1")
        return status == 200 and body["version"] == SENT

    await wait_for(view_caught_up, timeout_s=60, what=f"the view of {room} at {SENT}")
    path = f"/v1/rooms/{room}/messages?limit=50"
    seen: list[str] = []
    while True:
        status, body, link = await get(fleet, path)
        assert status == 200, body
        seen = [m["message_id"] for m in body["messages"]] + seen
        assert body["more"] is (link is not None)
        if link is None:
            break
        path = next_path(link)
        assert "limit=50" in path
    assert seen == [f"m{i}" for i in range(SENT)]


async def test_bad_paging_parameters_are_400_with_the_fix(fleet: FleetProcess) -> None:
    for query, named in [
        ("after_version=-1", "after_version"),
        ("after_version=x", "after_version"),
        ("limit=0", "limit"),
        ("limit=1001", "between 1 and 1000"),
    ]:
        status, body, _ = await get(fleet, f"/v1/chat_room/r1/events?{query}")
        assert status == 400 and body["error"] == "bad_request", (query, body)
        assert named in body["message"], body
    status, body, _ = await get(fleet, "/v1/rooms/r1/messages?before_version=0")
    assert status == 400 and "before_version" in body["message"]
