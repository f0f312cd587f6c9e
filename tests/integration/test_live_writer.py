"""The live transports on the fleet's HTTP edge (uvicorn, real sockets on loopback): a WebSocket
whose writer fails is closed 1011 (its client resumes instead of waiting on a socket nobody
writes to); one our subscription ends (a slow client, the store down) is told why with the
position, then closed 1013, and an event stream gets the same notice, then its end; a client that never reads holds the writer to the socket's high-water mark and is
ended by the sweep within its bound, while another client of the same process keeps getting its
events; and the wire the pushes write on is there exactly while a frame or chunk may go on it.

Before the 1011 fix, the writer died, the reader went on answering pings, and the client waited
forever (seen as a subscriber stuck at 51 of 101 events for 300 s in ``eventfleet bench live``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
import uvloop
from prometheus_client import CollectorRegistry

from tests.waiting import wait_for, within
from topics.envelope import Event, encode, new_event
from topics.errors import StoreUnavailable
from workers.http.edge.app import Edge
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.http.edge.routes import Api
from workers.http.edge.server import HOLD_AT_MOST, Serving
from workers.http.edge.streaming import STREAMED, WebSocket, stream
from workers.http.edge.wire import Wire
from workers.http.live.connections import Connections
from workers.http.live.shared import SharedEvents
from workers.http.live.transports import (
    WS_INTERNAL_ERROR,
    WS_TRY_AGAIN_LATER,
    Subscription,
    Transports,
)
from workers.http.queries import failure
from workers.metrics import create_live_metrics, create_metrics
from workers.roles.read.live import LiveLimits, SlowSubscriber
from workers.runtime.door.auth import Door
from workers.runtime.door.identity import Authenticator

STUCK_AFTER_S = 1.0


def message(n: int, size: int = 100) -> Event:
    return new_event("chat_room", "r1", "MessageSent",
                     {"message_id": f"m{n}", "sender_id": "ann", "content": "x" * size},
                     version=n)  # fmt: skip


def render(events: Sequence[Event]) -> list[tuple[bytes, bytes]]:
    return [(str(e.version).encode(), encode(e)) for e in events]


class Failing:
    """One batch, then an error that is not one of ours (a bug)."""

    live = False
    resume: dict[str, object] = {"after_version": 1}

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        yield [message(1)]
        raise RuntimeError("a bug in the subscription")


@dataclass
class Ending:
    """One batch, then ``error``: how a subscription of ours ends (slow client, store down)."""

    error: Exception
    live = False

    @property
    def resume(self) -> dict[str, object]:
        return {"after_version": 1}

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        yield [message(1)]
        raise self.error


ENDINGS = {
    "slow_client": SlowSubscriber("r1 fell behind; resume with after_version=1.", after_version=1),
    "error": StoreUnavailable("the store did not answer; resume with after_version=1."),
}


@dataclass
class Flood:
    """Events of ``size`` bytes as fast as the writer takes them (``count``: then it waits);
    notes the socket's unsent bytes each time the writer asks for more."""

    size: int
    count: int | None = None
    live = False
    given: int = 0
    transport: asyncio.Transport | None = None
    buffered: list[int] = field(default_factory=list)

    @property
    def resume(self) -> dict[str, object]:
        return {"after_version": self.given}

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        while self.count is None or self.given < self.count:
            if self.transport is not None:
                self.buffered.append(self.transport.get_write_buffer_size())
            self.given += 1
            yield [message(self.given, self.size)]
        await asyncio.Event().wait()
        yield []  # never reached: the connection ends first


@dataclass
class Server:
    url: str
    port: int
    transports: Transports
    connections: Connections
    subscriptions: list[Subscription]
    ended: list[str] = field(default_factory=list)
    wires: list[tuple[str, Wire | None]] = field(default_factory=list)


async def as_they_are(events: Sequence[Event]) -> list[Event]:
    return list(events)


def edge_of(api: Api) -> Edge:
    return Edge(api, Door(Authenticator(), create_metrics(CollectorRegistry())), failure)


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Server]:
    """The transports behind the edge on a free port, in the running loop."""
    shared = SharedEvents(as_they_are)
    transports = Transports(limits=LiveLimits(heartbeat_s=5), shared=shared,
                            metrics=create_live_metrics(CollectorRegistry()))  # fmt: skip
    api = Api()
    server = Serving(edge_of(api), "127.0.0.1", 0)
    running = Server(f"127.0.0.1:{server.port}", server.port, transports,
                     Connections(stuck_after_s=STUCK_AFTER_S, every_s=0.1), [])  # fmt: skip

    @api.get("/subscribe")
    async def subscribe(request: Request) -> Response:
        subscription = running.subscriptions.pop(0)
        if isinstance(subscription, Flood):
            subscription.transport = request.transport
        connection = running.connections.add(request)
        try:
            return await transports.stream(request, connection, subscription, render=render)
        finally:
            running.connections.discard(connection)
            running.ended.append("websocket" if request.websocket else "sse")

    @api.get("/wire")
    async def wire(request: Request) -> Response:
        wires = running.wires
        wires.append(("before", request.wire()))
        if request.websocket:
            ws = WebSocket(request)
            await ws.accept()
            wires.append(("open", request.wire()))
            await ws.close()
            wires.append(("closed", request.wire()))
            return STREAMED
        out = await stream(request, {"Content-Type": "text/event-stream"})
        wires.append(("open", request.wire()))
        await out.end()
        wires.append(("closed", request.wire()))
        return STREAMED

    await server.start()
    try:
        yield running
    finally:
        running.connections.close_all()
        server.close_now()
        await server.stop()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serving() as running:
        yield running


async def test_a_failing_writer_closes_the_websocket_with_1011(server: Server) -> None:
    server.subscriptions.append(Failing())
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://{server.url}/subscribe") as ws,
    ):
        async with asyncio.timeout(10):  # before the fix: no message ever came
            first = await ws.receive()
            after = await ws.receive()
    assert first.type == aiohttp.WSMsgType.TEXT and orjson.loads(first.data)["version"] == 1
    assert after.type == aiohttp.WSMsgType.CLOSE and after.data == WS_INTERNAL_ERROR
    assert after.extra == "error"


@pytest.mark.parametrize("ending", ["slow_client", "error"])
async def test_a_websocket_our_subscription_ends_gets_why_and_close_1013(
    server: Server, ending: str
) -> None:
    server.subscriptions.append(Ending(ENDINGS[ending]))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://{server.url}/subscribe") as ws,
    ):
        async with asyncio.timeout(10):
            first, notice, after = await ws.receive(), await ws.receive(), await ws.receive()
    assert orjson.loads(first.data)["version"] == 1
    told = orjson.loads(notice.data)
    assert (told["error"], told["after_version"]) == (
        "slow_client" if ending == "slow_client" else "store_unavailable",
        1,
    )
    assert after.type == aiohttp.WSMsgType.CLOSE and after.data == WS_TRY_AGAIN_LATER
    assert after.extra == ending


@pytest.mark.parametrize("ending", ["slow_client", "error"])
async def test_an_event_stream_our_subscription_ends_says_why_then_ends(
    server: Server, ending: str
) -> None:
    server.subscriptions.append(Ending(ENDINGS[ending]))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{server.url}/subscribe") as response:
            # whole: the stream ends after the notice
            body = await within(response.read(), timeout_s=10, what="the stream to end")
    messages = body.decode().split("\n\n")
    assert messages[0] == "retry: 1000" and messages[1].startswith("id: 1\ndata: {")
    event, data = messages[2].split("\n")
    assert event == f"event: {ending}"
    assert orjson.loads(data.removeprefix("data: "))["after_version"] == 1


HANDSHAKE = {
    "websocket": b"GET /subscribe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",
    "sse": b"GET /subscribe HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
}


async def never_reading(port: int, via: str) -> socket.socket:
    """A client that sends its request and never reads a byte (a small receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, HANDSHAKE[via])
    return sock


async def reader(url: str, via: str, count: int) -> Callable[[], int]:
    """A client that reads: how many events it has got so far."""
    got: list[int] = []
    session = aiohttp.ClientSession()

    async def read() -> None:
        try:
            if via == "websocket":
                async with session.ws_connect(f"ws://{url}/subscribe") as ws:
                    async for frame in ws:
                        got.append(orjson.loads(frame.data)["version"])
                        if len(got) == count:
                            return
            else:
                async with session.get(f"http://{url}/subscribe") as response:
                    async for line in response.content:
                        if line.startswith(b"data: "):
                            got.append(orjson.loads(line[6:])["version"])
                            if len(got) == count:
                                return
        finally:
            await session.close()

    task = asyncio.create_task(read())
    task.add_done_callback(lambda _: None)
    return lambda: len(got)


@pytest.mark.parametrize("via", ["websocket", "sse"])
async def test_a_client_that_never_reads_holds_the_writer_at_the_mark_and_is_ended(
    server: Server, via: str
) -> None:
    flood = Flood(size=8192)
    server.subscriptions.append(flood)
    stuck = await never_reading(server.port, via)
    try:
        await wait_for(lambda: flood.given > 0, timeout_s=10, what="the flood to start")
        assert flood.transport is not None
        high = flood.transport.get_write_buffer_limits()[1]
        server.subscriptions.append(Flood(size=100, count=50))
        got = await reader(server.url, via, 50)
        await wait_for(lambda: got() == 50, timeout_s=10, what="the reading client's events")
        await wait_for(lambda: via in server.ended, timeout_s=STUCK_AFTER_S + 10,
                       what="the sweep to end the client that never reads")  # fmt: skip
    finally:
        stuck.close()
    # The writer waited whenever the socket held more than its mark: it never queued more than
    # the mark, what the edge holds of one loop turn before the socket sees it (HOLD_AT_MOST:
    # the socket's flow control acts on it when it is written) and the frame that crossed it,
    # however much it was given.
    frame = len(HANDSHAKE[via]) + 8192 + 1024
    assert max(flood.buffered) <= high + HOLD_AT_MOST + frame, (max(flood.buffered), high)
    assert flood.given < 4096, flood.given  # the kernel's buffers, not an unbounded queue


async def wire_states(server: Server) -> dict[str, dict[str, Wire | None]]:
    """The wire a route sees before, during and after its answer, per kind of answer."""
    states = {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{server.url}/wire") as response:
            assert response.headers["Transfer-Encoding"] == "chunked"
            await response.read()
        states["sse"], server.wires[:] = dict(server.wires), []
        async with session.ws_connect(f"ws://{server.url}/wire") as ws:
            await ws.receive()
        states["websocket"], server.wires[:] = dict(server.wires), []
        async with session.head(f"http://{server.url}/wire") as response:
            assert response.status == 200
        states["head"], server.wires[:] = dict(server.wires), []
    return states


def check_wires(states: dict[str, dict[str, Wire | None]]) -> None:
    sse, websocket, head = states["sse"], states["websocket"], states["head"]
    assert sse["before"] is None and sse["closed"] is None
    assert sse["open"] is not None and sse["open"].chunked and not sse["open"].websocket
    assert websocket["before"] is None and websocket["closed"] is None
    assert websocket["open"] is not None and websocket["open"].websocket
    assert head["open"] is None  # no body goes out for HEAD: nothing may be pushed


async def test_the_wire_is_there_exactly_while_a_pushed_write_may_go(server: Server) -> None:
    check_wires(await wire_states(server))


def test_the_wire_is_found_under_uvloop_too() -> None:
    """The serving commands' loop (EVENTFLEET_EVENT_LOOP=uvloop), whose transports are not
    ``asyncio.Transport`` subclasses."""

    async def states() -> dict[str, dict[str, Wire | None]]:
        async with serving() as server:
            return await wire_states(server)

    check_wires(uvloop.run(states()))
