"""A read rule on every read route (issue 33, row 1): walked over the router, not hand-listed.

The fleet serves the chat room with a strict per-aggregate read rule ("rooms named ``alice-…``
are alice's"; ``None`` is refused: ``tests/e2e/owned_rooms.py``, which logs every call). alice
writes a message with a canary word in her room; then alice and bob read that room through
every GET route the fleet's router holds (built in this process from the same settings),
plainly and as a WebSocket. Whatever route shows alice the canary reads her room: bob must be
refused there (403) -- or, on the global read of every aggregate (``/v1/events``), which asks
the rule per event, answered without it, the rule asked about the room -- and he must never see
the canary anywhere. A route with a parameter
besides ``{aggregate_type}`` never hands the rule None, and never refuses alice her own room.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from snapshot_rules.queries import path_params
from tests.e2e import owned_rooms
from tests.fleet import FleetProcess, running_fleet
from tests.tokens import bearer
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack
from workers.http import FleetHttp, register
from workers.runtime.compose import ROLES, Runtime
from workers.runtime.fleet import Fleet
from workers.runtime.serve import build_fleet
from workers.runtime.settings import Settings

STREAM_READ_S = 3.0
"""How long a stream or socket is read for the canary before it counts as not showing it."""


@pytest.fixture(scope="module")
async def owned(
    stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FleetProcess, Path]]:
    log = tmp_path_factory.mktemp("read-rule") / "calls.log"
    log.touch()
    env = {"EVENTFLEET_DOMAINS": "tests.e2e.owned_rooms:domains", owned_rooms.LOG_ENV: str(log)}
    async with running_fleet(stack, f"own_{uuid.uuid4().hex[:8]}", **env) as fleet:
        yield fleet, log


async def get_routes(fleet: FleetProcess) -> list[str]:
    """Every GET route path the fleet's router holds, built here from the fleet's settings."""
    settings = Settings.from_env({**fleet.env, "EVENTFLEET_HTTP_PORT": "0"})  # its own socket
    runtime = await Runtime.start(settings, domains=owned_rooms.domains())
    try:
        built: list[FleetHttp] = []

        def views(fleet: Fleet) -> FleetHttp:
            built.append(register(fleet))
            return built[0]

        build_fleet(runtime, ROLES, app_id=f"walk-{uuid.uuid4().hex[:6]}", views=views)
        http = built[0]
        http.serving.sock.close()  # never started: only its routes are read
        paths = {route.template for route in http.api if route.method == "GET"}
    finally:
        await runtime.stop()
    return sorted(paths)


def filled(path: str, room: str) -> str:
    """The path with ``{aggregate_type}`` the chat room and every other parameter the room."""
    return re.sub(
        r"\{([^{}:]+)(?::[^{}]*)?\}",
        lambda m: "chat_room" if m.group(1) == "aggregate_type" else room,
        path,
    )


@dataclass(frozen=True, slots=True)
class Seen:
    status: int
    reason: str | None
    canary: bool


async def read_plain(session: aiohttp.ClientSession, url: str, canary: bytes) -> Seen:
    async with session.get(url, allow_redirects=False) as r:
        if r.content_type == "text/event-stream":
            got, deadline = b"", time.monotonic() + STREAM_READ_S
            while canary not in got and (left := deadline - time.monotonic()) > 0:
                try:
                    chunk = await asyncio.wait_for(r.content.readany(), left)
                except TimeoutError:
                    break
                if not chunk:
                    break
                got += chunk
            return Seen(r.status, None, canary in got)
        raw = await r.read()
    reason = None
    if r.content_type == "application/json":
        body: Any = orjson.loads(raw)
        reason = body.get("reason") if isinstance(body, dict) else None
    return Seen(r.status, reason, canary in raw)


async def read_socket(
    session: aiohttp.ClientSession, url: str, canary: bytes, origin: str
) -> Seen | None:
    """The route as a WebSocket; None when it is no socket (the handshake got a plain answer)."""
    try:
        async with session.ws_connect(url, headers={"Origin": origin}) as ws:
            got, deadline = b"", time.monotonic() + STREAM_READ_S
            while canary not in got and (left := deadline - time.monotonic()) > 0:
                try:
                    message = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                data = message.data
                got += data.encode() if isinstance(data, str) else data
            return Seen(101, None, canary in got)
    except aiohttp.WSServerHandshakeError as e:
        return Seen(e.status, None, False) if e.status in (401, 403) else None


async def walk(
    fleet: FleetProcess, log: Path, path: str, room: str, token: str, canary: bytes
) -> tuple[Seen, Seen | None, list[str]]:
    """One principal's plain and socket reads of ``path``, and the rule's calls they made."""
    before = len(rule_calls(log))
    url = fleet.url + filled(path, room)
    async with aiohttp.ClientSession(headers=bearer(token)) as session:
        plain = await read_plain(session, url, canary)
        socket = await read_socket(session, url, canary, fleet.url)
    return plain, socket, rule_calls(log)[before:]


def rule_calls(log: Path) -> list[str]:
    """The aggregate id (``-``: None) of every read-rule call the fleet logged so far."""
    lines = log.read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines]


async def test_every_read_route_hands_the_rule_its_aggregate(
    owned: tuple[FleetProcess, Path],
) -> None:
    fleet, log = owned
    alice, bob = fleet.token("alice", ()), fleet.token("bob", ())
    room, canary = f"alice-{uuid.uuid4().hex[:8]}", f"canary{uuid.uuid4().hex}"
    sent = {"type": "MessageSent", "data": {"message_id": "m1", "content": f"hi {canary}"}}
    status, body = await fleet.post(f"/v1/chat_room/{room}/events", sent, token=alice)
    assert status == 202, body
    messages = owned_rooms.OWNED_ROOM.queries[0].path.replace("{room_id}", room)

    async def visible() -> bool:  # stored, and in the projection the query reads
        status, body = await fleet.get(messages, token=alice)
        assert status != 403, f"alice is refused her own room's messages: {body}"
        return status == 200 and canary in orjson.dumps(body).decode()

    await wait_for(visible, timeout_s=30, what="alice's message in her room's view")

    routes = await get_routes(fleet)
    reading: list[str] = []
    problems: list[str] = []
    for path in routes:
        about_one = any(p != "aggregate_type" for p in path_params(path))
        # A read of every aggregate (the global read): it asks the rule per event and leaves
        # out what the caller may not read, so bob is answered, without alice's room.
        per_event = not path_params(path) and path.startswith("/v1/events")
        mine = await walk(fleet, log, path, room, alice, canary.encode())
        theirs = await walk(fleet, log, path, room, bob, canary.encode())
        for who, (plain, socket, calls) in (("alice", mine), ("bob", theirs)):
            for kind, seen in (("GET", plain), ("socket", socket)):
                if seen is None:
                    continue
                if who == "bob" and seen.canary:
                    problems.append(f"{kind} {path}: bob read alice's message")
                if who == "alice" and about_one and seen.status == 403 and kind == "GET":
                    if seen.reason == "read_refused":
                        problems.append(f"{kind} {path}: alice refused her own room")
            if about_one and "-" in calls:
                problems.append(f"{path}: the read rule saw None ({who}; calls {calls})")
            if any(call not in (room, "-") for call in calls):
                problems.append(f"{path}: the read rule saw another id ({who}; calls {calls})")
        for kind, seen_alice, seen_bob in (
            ("GET", mine[0], theirs[0]),
            ("socket", mine[1], theirs[1]),
        ):
            if seen_alice is None or not seen_alice.canary:
                continue
            reading.append(f"{kind} {path}")
            if per_event and seen_bob is not None and room not in theirs[2]:
                problems.append(f"{kind} {path} reads every aggregate without asking bob's rule")
            elif not per_event and (seen_bob is None or seen_bob.status != 403):
                problems.append(f"{kind} {path} reads alice's room, yet bob got {seen_bob}")
            if room not in mine[2]:
                problems.append(f"{kind} {path} reads alice's room without asking the rule")
    print(
        f"read rule walk: {len(routes)} GET routes, each plain and as a socket; "
        f"{len(reading)} read alice's room, bob refused (or, per event, kept out) on all; problems {len(problems)}"
    )
    assert not problems, "\n".join(problems)
    # The oracle itself works: the routes every fleet serves for one room showed the canary.
    for expected in (
        "GET /v1/{aggregate_type}/{aggregate_id}/events",
        "GET /v1/{aggregate_type}/{aggregate_id}/state",
        "GET /v1/{aggregate_type}/{aggregate_id}/subscribe",
        f"GET {owned_rooms.OWNED_ROOM.queries[0].path}",
    ):
        assert expected in reading, (expected, reading, routes)
