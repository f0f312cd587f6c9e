"""The HTTP server of a fleet process: uvicorn (httptools, uvloop) in the process's own loop.

uvicorn parses HTTP/1.1 (keep-alive, pipelining, chunked bodies) and WebSockets (the
``websockets`` library's protocol: pings, message size, close codes); ``Serving`` starts it on
the process's loop, beside the Faust app, and stops it in the drain. Two bounds uvicorn leaves to
its user are set here, in its protocol class: how long a client may take to send a request's
headers (a slow client holds no connection longer: ``408``), and how large they may be
(``431``). A body's own bounds (size, time) are the routes' (``Request.read_body``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from workers.http.edge.request import App

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may hold the server to."""

    header_timeout_s: float = 10.0
    """From a request's first byte (or the connection's opening) to the end of its headers."""
    max_header_bytes: int = 128 * 1024
    """The request line and headers together (an oversized token is still answered in JSON up
    to this size by the door: ``401 token_too_large``)."""
    keep_alive_s: int = 75
    """An idle keep-alive connection is closed after this long (behind a load balancer: above
    its own idle timeout, so it never reuses a connection we closed)."""
    max_ws_message_bytes: int = 1024 * 1024
    ws_ping_s: float = 20.0
    """A WebSocket is pinged this often; one whose client does not answer within as long is
    closed (a client that stopped reading)."""
    max_connections: int | None = None
    """Beyond this many connections a request is answered ``503`` at once (None: no bound)."""


HOLD_AT_MOST = 16 * 1024
"""Bytes a turn's writes are held for at most: an answer's head and body, a burst of pushed
frames; beyond it they go to the socket at once."""


class Coalescing(asyncio.Transport):
    """A connection's transport whose writes of one loop turn go out in one write.

    uvicorn writes an answer's head and its body in two writes, each a ``send`` system call on
    an idle socket; held until the turn's callbacks ran, they (and the answers of pipelined
    requests) leave in one. Everything else is the socket transport's own; a close, or a
    question about what is buffered, first writes what is held.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size >= HOLD_AT_MOST:  # a writer that does not yield: the socket sees it now,
            self.flush()  # so its flow control (a paused writer) holds as without this

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in chunks:
            self.write(data)

    def flush(self) -> None:
        held, self._held, self._size = self._held, [], 0
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._transport.get_extra_info(name, default)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for the headers and a bound on their size."""

    limits = Limits()

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._begun = False  # a request's first bytes came, its headers are not whole yet
        self._last = False  # the server is stopping: the request that comes is the last one

    def connection_made(  # type: ignore[override]  # uvicorn narrows asyncio's BaseTransport
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(Coalescing(transport, self.loop))
        self._arm()  # a connection that never sends a request is not held for ever either

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._begun = True
        if self._deadline is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._begun = False
        if not self._refused:
            super().on_headers_complete()
            if self._last and self.cycle is not None:
                self.cycle.keep_alive = False  # answered with "connection: close", then closed

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def shutdown(self) -> None:
        """The server stops: a connection whose request has not been read yet is answered once
        it is, then closed.

        uvicorn closes at once a connection with no request in progress. One the listener
        accepted as the drain began, its request still on its way, would end unanswered, and
        its client could not tell whether the request was taken. Here it keeps the stop's grace
        to send its request, which the draining routes answer (``503 shutting_down``). An idle
        keep-alive connection is still closed at once: its client knows an idle connection may
        close at any time.
        """
        if self.cycle is None or self._begun:
            self._last = True
        else:
            super().shutdown()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes and not self._refused:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"the request line and headers exceed {self.limits.max_header_bytes} "
                "bytes; send smaller headers.",
            )

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its headers came in time
        if self._header_bytes == 0 and self.cycle is not None:
            self.transport.close()  # an idle keep-alive connection: uvicorn's own bound
            return
        self._refuse(
            408,
            "Request Timeout",
            f"the request's headers were not whole {self.limits.header_timeout_s:g} s "
            "after it began; send them without pausing.",
        )

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer ``status`` in the fleet's JSON shape, then close: nothing more is read."""
        self._refused = True
        code = "request_header_fields_too_large" if status == 431 else "request_timeout"
        body = b'{"error":"%s","message":"%s"}' % (code.encode(), message.encode())
        head = b"HTTP/1.1 %d %s\r\n" % (status, reason.encode())
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        head += b"connection: close\r\n\r\n"
        self.transport.write(head + body)
        self.transport.close()


def _refused_handshakes(record: logging.LogRecord) -> bool:
    """Drop uvicorn's "ASGI callable returned without completing handshake" error: it logs it
    for every WebSocket the door or a route refuses with an HTTP answer (the ASGI denial
    extension: the client gets its status and JSON), a refusal and no error (uvicorn PR #3138)."""
    return "without completing handshake" not in record.getMessage()


def config(app: App, sock: socket.socket, limits: Limits) -> uvicorn.Config:  # an ASGI app
    """uvicorn's configuration for ``app`` on the bound ``sock``."""
    protocol = type("Bounded", (BoundedHttpTools,), {"limits": limits})
    # uvicorn's INFO lines name each WebSocket's path with its query, where a live route's
    # ticket travels (never logged), a line per connection: only its warnings and errors.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").addFilter(_refused_handshakes)
    return uvicorn.Config(
        app,
        fd=None,
        http=protocol,
        ws="websockets-sansio",
        loop="none",  # the process's own loop (uvloop when EVENTFLEET_EVENT_LOOP says so)
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # the door reads X-Forwarded-* itself, from trusted proxies only
        ws_max_size=limits.max_ws_message_bytes,
        ws_ping_interval=limits.ws_ping_s,
        ws_ping_timeout=limits.ws_ping_s,
        ws_per_message_deflate=False,  # the live fan-out shares one frame per event
        timeout_keep_alive=limits.keep_alive_s,
        limit_concurrency=limits.max_connections,
        timeout_graceful_shutdown=None,
    )


class Serving:
    """The server of one process: started on its loop, stopped within the drain's bound."""

    def __init__(self, app: App, host: str, port: int, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.sock = bind(host, port)
        self.port: int = self.sock.getsockname()[1]
        self.server = uvicorn.Server(config(app, self.sock, self.limits))
        self._ticks: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.server.config.load()
        self.server.lifespan = self.server.config.lifespan_class(self.server.config)
        await self.server.startup(sockets=[self.sock])
        self._ticks = asyncio.create_task(self.server.main_loop())  # the Date header, each second

    async def stop(self, grace_s: float = 0.3) -> None:
        """Stop taking connections and end the open ones: each is told to close once its answer
        is out (an idle keep-alive at once, a WebSocket with 1012, one whose request is on its
        way once that is answered); what is still open ``grace_s`` later is cut. The drain
        calls this once its requests in flight are done, so only idle and live connections are
        left, and the live ones were ended already: uvicorn's own shutdown, which waits as long
        as a client takes to close, is not waited on."""
        self.server.should_exit = True
        if self._ticks is not None:
            await asyncio.gather(self._ticks, return_exceptions=True)
        if not self.server.started:
            return
        for listening in self.server.servers:
            listening.close()
        state = self.server.server_state
        for connection in list(state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(grace_s):
                while state.connections or state.tasks:  # noqa: ASYNC110  # uvicorn sets no event
                    await asyncio.sleep(0.02)  # a poll of uvicorn's own sets, bounded above
        except TimeoutError:
            self.close_now()

    def close_now(self) -> None:
        """Cut every connection still open (the drain's deadline passed)."""
        self.server.force_exit = True
        for connection in list(self.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port), bound now so its port is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
