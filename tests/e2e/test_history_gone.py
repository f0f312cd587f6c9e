"""No read serves a gap silently (issue 46), on a running fleet over MongoDB: a chat room keeps 10
events hot and its archived history is then damaged outside the fleet, as an operator's mistake
or a lost backup would: versions 40-59 of one room's archive deleted (partly lost), every
archived event of another deleted (the archive dropped), versions 100-109 of a third (a hole only
the read of later edits and deletes, filtered by type, crosses), versions 20-29 of a fourth (one
the room's walk back over older messages meets).

Every read that would skip a version answers ``410 history_compacted`` with ``whole_from``
instead: ``/events`` (a page ends before the hole, the next one is refused), the state at a
version or a moment, the room's older pages, the Python client, and the live routes (SSE, the
WebSocket, the chat socket and the room's view), which give out what precedes the hole, then
say so, and refuse a client resuming in front of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from tests.e2e.archiving import RETAINED, archive, every_event, send_messages
from tests.e2e.live_clients import sse
from tests.fleet import FleetProcess, running_fleet
from tests.waiting import wait_for, within
from workers.adapters.mongo import connect, database
from workers.client import AsyncClient
from workers.client.errors import HistoryCompactedError
from workers.devtools.embedded import EmbeddedStack

N = 150
FIRST_HOT = N - 10 + 1  # the archive takes what the snapshot covers, all but the newest 10


@dataclass
class Rooms:
    fleet: FleetProcess
    lost: str  # archived versions 40-59 deleted
    dropped: str  # every archived version deleted
    typed: str  # archived versions 100-109 deleted
    deep: str  # archived versions 20-29 deleted
    times: dict[int, str]  # occurred_at of each version of ``lost``, read before the damage


@pytest.fixture(scope="module")
async def rooms(stack: EmbeddedStack) -> AsyncIterator[Rooms]:
    name = f"gone_{uuid.uuid4().hex[:8]}"
    # No ladder: the first snapshot would be kept as a rung wherever it fell (version 100, say),
    # and a state at that rung is whole, so which reads cross a hole would depend on timing.
    async with running_fleet(
        stack, name, EVENTFLEET_DOMAINS=RETAINED, EVENTFLEET_SNAPSHOT_LADDER_STEP="0"
    ) as fleet:
        run = uuid.uuid4().hex[:6]
        lost, dropped, typed, deep = (f"{what}-{run}" for what in ("lost", "dropped", "typed",
                                                                   "deep"))  # fmt: skip
        every = (lost, dropped, typed, deep)
        await asyncio.gather(*(send_messages(fleet, room, 0, N) for room in every))
        for room in every:
            await wait_for(lambda room=room: _snapshot_at(fleet, room, N), timeout_s=90,
                           what=f"{room}: {N} stored and its snapshot")  # fmt: skip
        times = {e["version"]: e["occurred_at"] for e in await every_event(fleet, lost)}
        await archive(fleet)
        client = connect(stack.urls.mongo_url, timeout_ms=10_000)
        try:
            archived = database(client, fleet.env["EVENTFLEET_MONGO_DATABASE"])["events_archive"]
            hot = database(client, fleet.env["EVENTFLEET_MONGO_DATABASE"])["events"]
            for room in every:  # what the test relies on: 1-140 archived
                assert await hot.count_documents({"aggregate_id": room}) == N - FIRST_HOT + 1
            holes = ((lost, 40, 59), (dropped, 1, N), (typed, 100, 109), (deep, 20, 29))
            for room, low, high in holes:
                await archived.delete_many(
                    {"aggregate_id": room, "version": {"$gte": low, "$lte": high}}
                )
        finally:
            await client.close()
        yield Rooms(fleet, lost, dropped, typed, deep, times)


async def _snapshot_at(fleet: FleetProcess, room: str, version: int) -> bool:
    await fleet.get(f"/v1/chat_room/{room}/state")  # a replayed tail is saved as the snapshot
    status, body = await fleet.get(f"/v1/chat_room/{room}/snapshot")
    return status == 200 and body["version"] == version


def gone(answer: tuple[int, Any], whole_from: int, after_version: int | None = None) -> None:
    status, body = answer
    assert status == 410, answer
    assert body["error"] == "history_compacted", body
    assert body["whole_from"] == whole_from, body
    if after_version is not None:
        assert body["after_version"] == after_version, body
    assert "stored nowhere any more" in body["message"], body


def versions(page: dict[str, Any]) -> list[int]:
    return [e["version"] for e in page["events"]]


async def test_a_page_ends_before_the_hole_and_a_read_at_it_is_410(rooms: Rooms) -> None:
    fleet, room = rooms.fleet, rooms.lost
    status, page = await fleet.get(f"/v1/chat_room/{room}/events?after_version=0&limit=1000")
    assert status == 200, page
    assert versions(page) == list(range(1, 40))  # never 801 versions with 100 missing
    assert (page["more"], page["next_after_version"]) == (True, 39)
    answer = await fleet.get(f"/v1/chat_room/{room}/events?after_version=39")
    gone(answer, 60, 39)
    assert "versions 40 to 59 are stored nowhere" in answer[1]["message"]
    gone(await fleet.get(f"/v1/chat_room/{room}/events?after_version=45&limit=5"), 60, 45)
    status, page = await fleet.get(f"/v1/chat_room/{room}/events?after_version=59&limit=1000")
    assert status == 200 and versions(page) == list(range(60, N + 1)) and not page["more"]
    status, page = await fleet.get(f"/v1/chat_room/{room}/events?after_version=10&limit=29")
    assert versions(page) == list(range(11, 40)) and page["more"]  # exactly up to the hole


async def test_an_archive_dropped_is_410_from_the_start_and_the_state_still_whole(
    rooms: Rooms,
) -> None:
    fleet, room = rooms.fleet, rooms.dropped
    gone(await fleet.get(f"/v1/chat_room/{room}/events"), FIRST_HOT, 0)  # not 10 events from 141
    gone(await fleet.get(f"/v1/chat_room/{room}/events?after_version={FIRST_HOT - 2}"), FIRST_HOT)
    status, page = await fleet.get(f"/v1/chat_room/{room}/events?after_version={FIRST_HOT - 1}")
    assert status == 200 and versions(page) == list(range(FIRST_HOT, N + 1))
    status, state = await fleet.get(f"/v1/chat_room/{room}/state")  # the snapshot covers it
    assert status == 200 and state["version"] == N
    gone(await fleet.get(f"/v1/chat_room/{room}/state?at_version=100"), FIRST_HOT)


async def test_a_state_at_a_point_behind_a_hole_is_410_never_a_partial_fold(rooms: Rooms) -> None:
    fleet, room = rooms.fleet, rooms.lost
    status, state = await fleet.get(f"/v1/chat_room/{room}/state?at_version=30")
    assert status == 200 and state["version"] == 30
    for version in (40, 50, 80):
        gone(await fleet.get(f"/v1/chat_room/{room}/state?at_version={version}"), 60)
    status, state = await fleet.get(f"/v1/chat_room/{room}/state?at_version={N}")
    assert status == 200 and state["version"] == N  # the snapshot covers the hole
    before, across = quote(rooms.times[30]), quote(rooms.times[70])
    status, state = await fleet.get(f"/v1/chat_room/{room}/state?as_of={before}")
    assert status == 200 and 30 <= state["version"] < 40, state
    gone(await fleet.get(f"/v1/chat_room/{room}/state?as_of={across}"), 60)


async def test_the_rooms_older_pages_never_skip_the_hole(rooms: Rooms) -> None:
    """The newest 100 messages are the room's window (its replayed state, which the snapshot
    folds whole); a page below the window reads the store: the edits and deletes after it (by
    type), then the messages walking back, and neither crosses a hole."""
    fleet = rooms.fleet
    pages = f"/v1/rooms/{rooms.lost}/messages?source=replay&limit=20"
    status, page = await fleet.get(f"{pages}&before_version=100")
    assert status == 200 and len(page["messages"]) == 20, page  # 80-99, from the window
    gone(await fleet.get(f"{pages}&before_version=60"), 60)
    deep = f"/v1/rooms/{rooms.deep}/messages?source=replay&limit=20"
    status, page = await fleet.get(f"{deep}&before_version=50")
    assert status == 200 and [m["version"] for m in page["messages"]] == list(range(30, 50))
    gone(await fleet.get(f"{deep}&before_version=45"), 30)  # 30-44 found, then the hole
    typed = f"/v1/rooms/{rooms.typed}/messages?source=replay&limit=5"
    status, page = await fleet.get(f"{typed}&before_version=95")
    assert status == 200 and len(page["messages"]) == 5, page  # from the window
    gone(await fleet.get(f"{typed}&before_version=45"), 110, 99)  # edits after 45 unknowable


async def test_the_client_raises_history_compacted_after_the_whole_part(rooms: Rooms) -> None:
    fleet = rooms.fleet
    async with AsyncClient(fleet.url, token=fleet.token()) as client:
        seen: list[int] = []
        with pytest.raises(HistoryCompactedError) as raised:
            async for event in client.events("chat_room", rooms.lost, page_size=25):
                seen.append(event.version or 0)
        assert seen == list(range(1, 40))
        assert (raised.value.status, raised.value.body["whole_from"]) == (410, 60)
        assert not raised.value.retriable
        rest = [e.version async for e in client.events("chat_room", rooms.lost, after_version=59)]
        assert rest == list(range(60, N + 1))


async def test_sse_gives_out_what_precedes_the_hole_then_says_so(rooms: Rooms) -> None:
    fleet, room = rooms.fleet, rooms.lost
    url = f"{fleet.url}/v1/chat_room/{room}/subscribe?after_version="
    reader = await sse(f"{url}0", headers=fleet.auth_headers)
    try:
        assert reader.status == 200
        await wait_for(lambda: reader.closed, timeout_s=30, what="the stream to end at the hole")
        assert reader.versions() == list(range(1, 40))
        [notice] = [m for m in reader.messages if m.event is not None]
        assert notice.event == "history_compacted"
        assert (notice.data["whole_from"], notice.data["after_version"]) == (60, 39)
    finally:
        await reader.close()
    # A browser's EventSource reconnects with its Last-Event-ID: refused, never streamed again.
    resumed = await sse(f"{url}0", headers={**fleet.auth_headers, "Last-Event-ID": "39"})
    await resumed.close()
    assert resumed.status == 410 and resumed.body["whole_from"] == 60, resumed.body
    after = await sse(f"{url}59", headers=fleet.auth_headers)
    try:
        await wait_for(lambda: len(after.versions()) == N - 59, timeout_s=30, what="60-150")
        assert after.versions() == list(range(60, N + 1)) and not after.closed
    finally:
        await after.close()
    dropped = await sse(f"{fleet.url}/v1/chat_room/{rooms.dropped}/subscribe",
                        headers=fleet.auth_headers)  # fmt: skip
    await dropped.close()
    assert dropped.status == 410 and dropped.body["whole_from"] == FIRST_HOT, dropped.body


async def ws_messages(url: str, headers: dict[str, str]) -> tuple[list[Any], int | None]:
    """Every text message of a WebSocket until the fleet closes it, and its close code."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=headers, timeout=30) as ws:
            received = [orjson.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
            return received, ws.close_code


async def test_websockets_say_history_compacted_and_close_4410(rooms: Rooms) -> None:
    fleet, room = rooms.fleet, rooms.lost
    ws_url = fleet.url.replace("http://", "ws://")
    received, code = await within(ws_messages(
        f"{ws_url}/v1/chat_room/{room}/subscribe?after_version=30", fleet.auth_headers
    ), timeout_s=60, what="the subscription to close")  # fmt: skip
    assert [m["version"] for m in received[:-1]] == list(range(31, 40))
    assert received[-1]["error"] == "history_compacted" and received[-1]["whole_from"] == 60
    assert received[-1]["after_version"] == 39 and code == 4410
    received, code = await within(ws_messages(
        f"{ws_url}/v1/rooms/{room}/ws?after_version=0", fleet.auth_headers
    ), timeout_s=60, what="the room's websocket to close")  # fmt: skip
    events = [m["event"]["version"] for m in received if m["kind"] == "event"]
    assert events == list(range(1, 40)) and code == 4410
    assert received[-1]["kind"] == "error" and received[-1]["error"] == "history_compacted"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await ws_messages(f"{ws_url}/v1/rooms/{room}/ws?after_version=45", fleet.auth_headers)
    assert refused.value.status == 410
    view = await sse(f"{fleet.url}/v1/rooms/{room}/subscribe?after_version=50",
                     headers=fleet.auth_headers)  # fmt: skip
    await view.close()
    assert view.status == 410 and view.body["whole_from"] == 60, view.body
