"""A WebSocket subscription whose writer fails ends its connection: the client is told (close
1011) and resumes, instead of waiting on a socket nobody writes to.

The live server's WebSocket transport over a real aiohttp server and client on loopback, with
a subscription that fails the way a bug would (an error that is not one of ours, after a first
batch). Before the fix, the writer died, the reader went on answering pings, and the client
waited forever (seen as a subscriber stuck at 51 of 101 events for 300 s in ``eventfleet bench
live``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from topics.envelope import Event, encode, new_event
from workers.http.live.connections import Connection
from workers.http.live.streams import WS_INTERNAL_ERROR, LiveServer
from workers.metrics import create_live_metrics
from workers.roles.read.live import LiveLimits

FIRST = new_event("chat_room", "r1", "MessageSent",
                  {"message_id": "m1", "sender_id": "ann", "content": "hi"}, version=1)  # fmt: skip


class Transports(LiveServer):
    """The live server's transports alone: no fleet behind them."""

    def __init__(self) -> None:  # the parts the WebSocket transport uses
        self.limits = LiveLimits(heartbeat_s=5)
        self.metrics = create_live_metrics(CollectorRegistry())
        self._sent = {"aggregate": self.metrics.events_sent.labels("aggregate")}


class Failing:
    """One batch, then an error that is not one of ours (a bug)."""

    live = False
    resume: dict[str, object] = {"after_version": 1}

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        yield [FIRST]
        raise RuntimeError("a bug in the subscription")


def render(events: Sequence[Event]) -> list[tuple[bytes, bytes]]:
    return [(str(e.version).encode(), encode(e)) for e in events]


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    transports = Transports()

    async def subscribe(request: web.Request) -> web.StreamResponse:
        connection = Connection(request, asyncio.current_task())
        return await transports._websocket(
            request, connection, Failing(), "aggregate", render, pushes=False
        )

    app = web.Application()
    app.router.add_get("/subscribe", subscribe)
    async with TestServer(app) as running:
        yield running


async def test_a_failing_writer_closes_the_websocket_with_1011(server: TestServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.make_url("/subscribe")) as ws,
    ):
        async with asyncio.timeout(10):  # before the fix: no message ever came
            first = await ws.receive()
            after = await ws.receive()
    assert first.type == aiohttp.WSMsgType.TEXT and orjson.loads(first.data)["version"] == 1
    assert after.type == aiohttp.WSMsgType.CLOSE and after.data == WS_INTERNAL_ERROR
    assert after.extra == "error"
