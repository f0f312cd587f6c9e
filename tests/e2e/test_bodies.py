"""Request bodies read whole, as a slow or hostile client sends them: raw bytes on a socket.

Chunked transfer-encoding in parts with pauses between them, a Content-Length body written a
few bytes at a time, a chunked body over EVENTFLEET_MAX_BODY_BYTES (413, nothing stored), an
announced length over it (413 before the body is sent), a body cut short and a malformed chunk
(400, nothing stored). The pauses are the stimulus (a slow sender), not a synchronisation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.e2e.raw_http import MAX_BODY_BYTES, chunked, post_in_writes
from tests.fleet import FleetProcess, running_fleet
from tests.tokens import OPERATOR, VIEWER
from workers.devtools.embedded import EmbeddedStack

WITHIN_S = 2  # EVENTFLEET_BODY_TIMEOUT_S of the fleet the truncated bodies are sent to


@pytest.fixture(scope="module")
async def strict(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    """A fleet that waits WITHIN_S for a body (30 s by default)."""
    name = f"bodies_{uuid.uuid4().hex[:8]}"
    async with running_fleet(stack, name, EVENTFLEET_BODY_TIMEOUT_S=str(WITHIN_S)) as process:
        yield process


def headers(fleet: FleetProcess, who: str, **more: str) -> dict[str, str]:
    token = fleet.token(who, [OPERATOR, VIEWER])
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **more}


def message(sender: str, mid: str, content: str = "hello") -> bytes:
    return orjson.dumps({
        "type": "MessageSent", "command_id": mid,
        "data": {"message_id": mid, "sender_id": sender, "content": content},
    })  # fmt: skip


async def stored_ids(fleet: FleetProcess, room: str, who: str, version: int) -> list[str]:
    status, body = await fleet.request(
        "GET", f"/v1/chat_room/{room}/events?min_version={version}&wait_ms=15000&limit=100",
        token=fleet.token(who, [OPERATOR, VIEWER]),
    )  # fmt: skip
    assert status == 200, body
    return [e["data"]["message_id"] for e in body["events"]]


async def test_chunked_and_slow_bodies_are_read_whole(fleet: FleetProcess) -> None:
    run = uuid.uuid4().hex[:8]
    me, room = f"b-{run}", f"body-{run}"
    path = f"/v1/chat_room/{room}/events"
    body = message(me, "chunked")
    status, answer = await post_in_writes(
        fleet, path, headers(fleet, me, **{"Transfer-Encoding": "chunked"}),
        chunked(body[:10], body[10:30], body[30:]),
    )  # fmt: skip
    assert status == 202, answer
    slow = message(me, "slow")
    writes = [slow[i : i + 7] for i in range(0, len(slow), 7)][:5]
    writes.append(slow[7 * len(writes) :])
    status, answer = await post_in_writes(
        fleet, path, headers(fleet, me, **{"Content-Length": str(len(slow))}), writes
    )
    assert status == 202, answer
    assert await stored_ids(fleet, room, me, 2) == ["chunked", "slow"]


async def test_an_erase_whose_body_arrives_in_two_parts(fleet: FleetProcess) -> None:
    run = uuid.uuid4().hex[:8]
    me, room = f"e-{run}", f"erase-{run}"
    status, _ = await fleet.request(
        "POST", f"/v1/chat_room/{room}/events", raw=message(me, "m"), token=fleet.token(me)
    )
    assert status == 202
    assert await stored_ids(fleet, room, me, 1) == ["m"]
    body = b'{"operator": "dpo"}'
    status, answer = await post_in_writes(
        fleet, f"/v1/subjects/{me}/erase", headers(fleet, "dpo", **{"Transfer-Encoding": "chunked"}),
        chunked(body[:8], body[8:]),
    )  # fmt: skip
    assert status == 200 and answer["already_erased"] is False, answer
    assert answer["by"] == "dpo"


async def test_too_large_truncated_and_malformed_bodies_store_nothing(strict: FleetProcess) -> None:
    fleet = strict
    run = uuid.uuid4().hex[:8]
    me, room = f"t-{run}", f"big-{run}"
    path = f"/v1/chat_room/{room}/events"
    big = message(me, "big", "x" * 4000)
    over = [big[:100]] + [b" " * 16384] * (MAX_BODY_BYTES // 16384 + 1) + [big[100:]]
    status, answer = await post_in_writes(
        fleet, path, headers(fleet, me, **{"Transfer-Encoding": "chunked"}), chunked(*over)
    )
    assert (status, answer["error"]) == (413, "payload_too_large"), answer
    assert "EVENTFLEET_MAX_BODY_BYTES" in answer["message"]
    announced = headers(fleet, me, **{"Content-Length": str(MAX_BODY_BYTES + 1)})
    status, answer = await post_in_writes(fleet, path, announced, [], answer_first=True)
    assert (status, answer["error"]) == (413, "payload_too_large"), answer  # before any byte
    cut = message(me, "cut")
    status, answer = await post_in_writes(
        fleet, path, headers(fleet, me, **{"Content-Length": str(len(cut) + 10)}), [cut],
        half_close=True,
    )  # fmt: skip
    assert status in (0, 400, 408), answer  # the sender is gone: maybe nobody reads an answer
    if status:
        assert answer["error"] in ("bad_request", "request_timeout"), answer
    cut_chunk = message(me, "cut-chunk")
    status, answer = await post_in_writes(
        fleet, path, headers(fleet, me, **{"Transfer-Encoding": "chunked"}),
        [f"{len(cut_chunk) + 10:x}\r\n".encode() + cut_chunk], half_close=True,
    )  # fmt: skip
    assert status in (0, 400, 408), answer
    started = time.monotonic()
    stalled = message(me, "stalled")
    status, answer = await post_in_writes(
        fleet, path, headers(fleet, me, **{"Content-Length": str(len(stalled))}), [stalled[:20]]
    )  # the sender stops, its connection open
    assert (status, answer["error"]) == (408, "request_timeout"), answer
    assert WITHIN_S <= time.monotonic() - started < WITHIN_S + 10
    bad = message(me, "bad-chunk")
    status, answer = await post_in_writes(
        fleet, path, headers(fleet, me, **{"Transfer-Encoding": "chunked"}),
        [b"zz\r\n" + bad + b"\r\n0\r\n\r\n"],
    )  # fmt: skip
    # aiohttp answers 400 itself when the bad chunk comes with the head; when the handler is
    # already reading, its parser never fails the body and only the deadline ends the wait.
    assert status in (400, 408), answer
    status, _ = await fleet.request("POST", path, raw=message(me, "fence"), token=fleet.token(me))
    assert status == 202
    assert await stored_ids(fleet, room, me, 1) == ["fence"]


async def test_a_body_that_came_whole_with_its_head_is_judged_by_the_same_limit(
    fleet: FleetProcess,
) -> None:
    """The route reads a body already whole without waiting: the limit holds there too."""
    run = uuid.uuid4().hex[:8]
    me, room = f"w-{run}", f"whole-{run}"
    path = f"/v1/chat_room/{room}/events"
    big = message(me, "big", "x" * 4000)
    over = [big[:100]] + [b" " * 16384] * (MAX_BODY_BYTES // 16384 + 1) + [big[100:]]
    chunked_head = headers(fleet, me, **{"Transfer-Encoding": "chunked"})
    status, answer = await post_in_writes(fleet, path, chunked_head, chunked(*over), with_head=True)
    assert (status, answer["error"]) == (413, "payload_too_large"), answer
    assert f"has {len(b''.join(over))} bytes" in answer["message"]
    status, answer = await post_in_writes(
        fleet, path, chunked_head, chunked(message(me, "m")), with_head=True
    )
    assert status == 202, answer
    assert await stored_ids(fleet, room, me, 1) == ["m"]
