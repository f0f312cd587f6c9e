"""The subscribers of ``eventfleet bench live``: SSE and WebSocket clients that check what they get.

Both sides deliver the same bytes (our event envelope), so each client does the same work per
event on either side: it parses the event and checks that it is its room's next version. Ours
also resumes from its position when the server closes it (``Last-Event-ID`` on SSE, as a
browser's EventSource does; ``after_version`` on a WebSocket), and the count must still come
out exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
import orjson

CONNECTING = 50
"""Subscribers connecting at a time."""


@dataclass
class Subscriber:
    """One connection's record: the versions it got, when, and whatever broke the count."""

    room: str
    url: str
    got: list[int] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    """Wall-clock time each event was read (``time.time()``), for latencies."""
    made: list[float] = field(default_factory=list)
    """The events' ``occurred_at`` (only when asked for: the command path)."""
    last: float = 0.0
    """``time.monotonic()`` of the last event read."""
    broken: str | None = None
    resumed: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, raw: bytes, *, sse_id: bytes | None = None, made: bool = False) -> None:
        """One event as the server sent it (the envelope's JSON)."""
        event = orjson.loads(raw)
        if "error" in event:
            return  # a slow_client notice: the server closes, the reader resumes
        version = event["version"]
        expected = len(self.got) + 1
        if self.broken is None:
            if event["aggregate_id"] != self.room:
                self.broken = f"got an event of {event['aggregate_id']} on {self.room}"
            elif version != expected or (sse_id is not None and int(sse_id) != version):
                self.broken = f"got {version} (id {sse_id!r}) after {expected - 1}"
        self.got.append(version)
        self.received.append(time.time())
        self.last = time.monotonic()
        if made:
            self.made.append(datetime.fromisoformat(event["occurred_at"]).timestamp())


def subscribers(rooms: Sequence[str], count: int, url: Callable[[str], str]) -> list[Subscriber]:
    """``count`` subscribers over ``rooms`` in turn, each reading ``url(room)``."""
    return [Subscriber(room, url(room)) for room in (rooms[i % len(rooms)] for i in range(count))]


async def read_sse(
    session: aiohttp.ClientSession, sub: Subscriber, *, resume: bool, made: bool = False
) -> None:
    """Read one SSE subscription; with ``resume``, reconnect from the last id when closed."""
    while True:
        headers = {"Accept": "text/event-stream"}
        if resume and sub.got:
            headers["Last-Event-ID"] = str(sub.got[-1])
            sub.resumed += 1
        with contextlib.suppress(aiohttp.ClientError, ConnectionError):
            async with session.get(sub.url, headers=headers) as response:
                if response.status != 200:
                    sub.broken = f"answered {response.status}: {await response.text()}"
                    sub.connected.set()
                    return
                sub.connected.set()
                buffer = b""
                async for chunk in response.content.iter_any():
                    *messages, buffer = (buffer + chunk).split(b"\n\n")
                    for message in messages:
                        _sse_message(sub, message, made)
        if not resume or sub.broken is not None:
            return
        await asyncio.sleep(0.2)


def _sse_message(sub: Subscriber, message: bytes, made: bool) -> None:
    sse_id = data = None
    for line in message.split(b"\n"):
        if line.startswith(b"data: "):
            data = line[6:]
        elif line.startswith(b"id: "):
            sse_id = line[4:]
        elif line.startswith(b"event: "):
            return  # slow_client or error: the server closes next
    if data is not None:
        sub.take(data, sse_id=sse_id, made=made)


async def read_websocket(
    session: aiohttp.ClientSession, sub: Subscriber, *, resume: bool, made: bool = False
) -> None:
    """Read one WebSocket subscription; with ``resume``, reconnect after the last version."""
    while True:
        url = sub.url
        if resume and sub.got:
            url = f"{url}?after_version={sub.got[-1]}"
            sub.resumed += 1
        with contextlib.suppress(aiohttp.ClientError, ConnectionError):
            async with session.ws_connect(url, max_msg_size=0) as ws:
                sub.connected.set()
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        sub.take(message.data.encode(), made=made)
                    elif message.type == aiohttp.WSMsgType.ERROR:
                        break
        if not resume or sub.broken is not None:
            sub.connected.set()
            return
        await asyncio.sleep(0.2)


async def connect(
    subs: list[Subscriber], via: str, *, resume: bool, made: bool = False
) -> tuple[aiohttp.ClientSession, list[asyncio.Task[None]]]:
    """Open every subscription (``CONNECTING`` at a time); RuntimeError if one is refused."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    read = read_websocket if via == "websocket" else read_sse
    tasks = []
    for start in range(0, len(subs), CONNECTING):
        group = subs[start : start + CONNECTING]
        for sub in group:
            tasks.append(asyncio.create_task(read(session, sub, resume=resume, made=made)))
        for sub in group:
            async with asyncio.timeout(30):
                await sub.connected.wait()
            if sub.broken is not None:
                await close(session, tasks)
                raise RuntimeError(f"a subscription was refused: {sub.broken}")
    return session, tasks


async def delivered(subs: list[Subscriber], counts: dict[str, int], timeout_s: float) -> None:
    """Wait until every subscriber has its room's count (checked every 10 ms)."""
    deadline = time.monotonic() + timeout_s
    while any(len(s.got) < counts[s.room] for s in subs):
        if time.monotonic() > deadline:
            short = [s for s in subs if len(s.got) < counts[s.room]]
            raise RuntimeError(
                f"{len(short)} subscribers did not get every event in {timeout_s:.0f} s "
                f"(one has {len(short[0].got)} of {counts[short[0].room]}: {short[0].broken})"
            )
        await asyncio.sleep(0.01)


async def close(session: aiohttp.ClientSession, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
