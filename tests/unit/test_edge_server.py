"""The HTTP edge's server on a real socket: bodies read whole however they arrive, the bounds
uvicorn leaves to us (header size: 431, header time: 408), and what a client that misbehaves costs
the others (nothing)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest

from tests.waiting import wait_for, within
from topics.errors import EventfleetError
from workers.http.edge.request import Request, Scope
from workers.http.edge.responses import json_response
from workers.http.edge.server import HOLD_AT_MOST, Coalescing, Limits, Serving
from workers.http.edge.streaming import deny
from workers.runtime.answers import error

LIMIT = 64 * 1024


async def reader_app(scope: Scope, receive: object, send: object) -> None:
    """Answers what ``read_body`` made of the body: its size, or the error's message."""
    if scope["type"] != "http":
        return
    request = Request(scope, receive, send)
    try:
        body = await request.read_body(LIMIT, 2.0)
        answer = {"size": len(body)}
    except EventfleetError as e:
        answer = error(400, type(e).__name__, str(e)).body  # type: ignore[assignment]
    raw = orjson.dumps(answer)
    await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                "headers": [(b"content-length", str(len(raw)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": raw})  # type: ignore[operator]


@pytest.fixture
async def server() -> AsyncIterator[Serving]:
    serving = Serving(reader_app, "127.0.0.1", 0, Limits(header_timeout_s=0.5,
                                                         max_header_bytes=4096))  # fmt: skip
    await serving.start()
    try:
        yield serving
    finally:
        await serving.stop()


async def exchange(port: int, writes: Sequence[bytes], *, pause_s: float = 0.0) -> bytes:
    """Send ``writes`` one by one and read the answer until the server closes or 10 s pass."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in writes:
            writer.write(data)
            await writer.drain()
            if pause_s:
                await asyncio.sleep(pause_s)  # the slow client itself, not a wait for a result
        return await within(reader.read(65536), timeout_s=10, what="the answer or the close")
    finally:
        writer.close()


def head(**headers: str) -> bytes:
    lines = ["POST /x HTTP/1.1", "Host: x", *(f"{k.replace('_', '-')}: {v}" for k, v in
                                              headers.items())]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(*parts: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in parts] + [b"0\r\n\r\n"]


def answer(raw: bytes) -> dict[str, object]:
    return orjson.loads(raw.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("split", [1, 2, 17])
async def test_a_chunked_body_is_read_whole_in_any_number_of_writes(
    server: Serving, split: int
) -> None:
    body = b"x" * 50_000
    size = -(-len(body) // split)
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    raw = await exchange(server.port, [head(Transfer_Encoding="chunked"), *chunked(*parts)])
    assert answer(raw) == {"size": len(body)}


@pytest.mark.parametrize("split", [1, 2, 9])
async def test_a_body_whose_last_part_crosses_the_limit_is_refused_at_once_with_its_size(
    server: Serving, split: int
) -> None:
    body = b"y" * (LIMIT + 5_000)
    size = -(-len(body) // split)
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    raw = await exchange(server.port, [head(Transfer_Encoding="chunked"), *chunked(*parts)])
    found = answer(raw)
    assert found["error"] == "PayloadTooLarge", found
    assert f"has {len(body)} bytes" in str(found["message"])


async def test_a_body_announced_too_large_is_refused_unread(server: Serving) -> None:
    raw = await exchange(server.port, [head(Content_Length=str(LIMIT + 1))])
    found = answer(raw)
    assert found["error"] == "PayloadTooLarge" and f"has {LIMIT + 1} bytes" in str(found["message"])


async def test_a_stalled_body_ends_at_its_bound(server: Serving) -> None:
    raw = await exchange(server.port, [head(Content_Length="10") + b"12345"])
    found = answer(raw)
    assert found["error"] == "BodyTimeout" and "5 bytes came" in str(found["message"])


async def test_oversized_headers_are_431_and_close_the_connection(server: Serving) -> None:
    raw = await exchange(server.port, [head(X_Big="a" * 5000)])
    assert raw.startswith(b"HTTP/1.1 431 "), raw[:80]
    assert b'"error":"request_header_fields_too_large"' in raw


async def test_headers_that_trickle_past_the_deadline_are_408(server: Serving) -> None:
    parts = [b"POST /x HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: b\r\n"]
    raw = await exchange(server.port, parts, pause_s=0.3)
    assert raw.startswith(b"HTTP/1.1 408 "), raw[:80]


async def test_a_later_request_on_a_kept_connection_has_its_own_header_deadline(
    server: Serving,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head(Content_Length="3") + b"abc")
        first = await within(reader.read(4096), timeout_s=10, what="the first answer")
        assert answer(first) == {"size": 3}
        for part in (b"POST /x HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: b\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.3)  # the slow client itself, not a wait for a result
        raw = await within(reader.read(65536), timeout_s=10, what="the 408")
    finally:
        writer.close()
    assert raw.startswith(b"HTTP/1.1 408 "), raw[:80]


async def test_a_silent_connection_is_closed_at_the_deadline(server: Serving) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        # ends when the server closes
        raw = await within(reader.read(1024), timeout_s=5, what="the close at the deadline")
    finally:
        writer.close()
    assert raw.startswith(b"HTTP/1.1 408 "), raw[:80]


async def test_a_slow_client_costs_the_others_nothing(server: Serving) -> None:
    slow = asyncio.create_task(exchange(server.port, [b"POST /x HTTP/1.1\r\n"], pause_s=0.4))
    body = b"z" * 1000
    raw = await exchange(server.port, [head(Content_Length=str(len(body))) + body])
    assert answer(raw) == {"size": 1000}
    assert (await slow).startswith(b"HTTP/1.1 408 ")


async def test_a_malformed_request_line_is_refused_by_the_server(server: Serving) -> None:
    raw = await exchange(server.port, [b"GARBAGE\x01 / HTTP/1.1\r\n\r\n"])
    assert raw.startswith(b"HTTP/1.1 400 "), raw[:80]


async def test_a_pipelined_pair_is_answered_in_order(server: Serving) -> None:
    one = head(Content_Length="3") + b"abc"
    two = head(Content_Length="5") + b"abcde"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(one + two)
        await writer.drain()
        seen = b""
        async with asyncio.timeout(10):
            while seen.count(b'{"size"') < 2:
                seen += await reader.read(4096)
    finally:
        writer.close()
    assert seen.index(b'{"size":3}') < seen.index(b'{"size":5}')


async def deny_app(scope: Scope, receive: object, send: object) -> None:
    """Refuses every WebSocket with a 403 in JSON, as the door does."""
    if scope["type"] != "websocket":
        return
    request = Request(scope, receive, send)
    await deny(request, json_response(error(403, "forbidden", "no.", reason="test")))


async def test_a_refused_websocket_gets_its_status_and_json_and_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serving = Serving(deny_app, "127.0.0.1", 0)
    await serving.start()
    try:
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        upgrade = (
            f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        with caplog.at_level(logging.INFO, logger="uvicorn.error"):
            raw = await exchange(serving.port, [upgrade])
    finally:
        await serving.stop()
    assert raw.startswith(b"HTTP/1.1 403 "), raw[:80]
    assert b'"reason":"test"' in raw
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


class Recorded(asyncio.Transport):
    """A socket transport that records its writes (the Coalescing writer's underneath)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "a write after the close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


async def test_the_writes_of_one_turn_leave_in_one_and_a_close_sends_what_is_held() -> None:
    socket = Recorded()
    coalescing = Coalescing(socket, asyncio.get_running_loop())
    coalescing.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    coalescing.write(b'{"event_id":"e"}')
    assert socket.writes == [] and coalescing.get_write_buffer_size() == 41
    await asyncio.sleep(0)  # one turn of the loop: the flush it scheduled runs
    assert socket.writes == [b'HTTP/1.1 202 Accepted\r\n\r\n{"event_id":"e"}']
    coalescing.write(b"last")
    coalescing.close()
    assert socket.writes[-1] == b"last" and socket.closed


async def test_a_writer_that_never_yields_reaches_the_socket_past_the_hold() -> None:
    """Held writes are bounded: a writer that loops without yielding (a WebSocket flood) must
    reach the socket, whose buffer then pauses it, not pile up in the holder for ever."""
    socket = Recorded()
    coalescing = Coalescing(socket, asyncio.get_running_loop())
    frame = b"x" * 4096
    for _ in range(HOLD_AT_MOST // len(frame) + 1):
        coalescing.write(frame)
    assert sum(len(w) for w in socket.writes) >= HOLD_AT_MOST
    assert coalescing.get_write_buffer_size() < HOLD_AT_MOST


async def connected(serving: Serving) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection the server has accepted (it is in uvicorn's set of connections)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
    state = serving.server.server_state
    await wait_for(lambda: len(state.connections) == 1, timeout_s=10, what="the accept")
    return reader, writer


async def stopping(serving: Serving, grace_s: float) -> asyncio.Task[None]:
    """``serving.stop(grace_s)`` under way, its listener closed."""
    stop = asyncio.create_task(serving.stop(grace_s))
    await wait_for(
        lambda: not any(s.is_serving() for s in serving.server.servers),
        timeout_s=10,
        what="the listener's close",
    )
    return stop


@pytest.mark.parametrize("sent_before", [b"", b"POST /x HTTP/1.1\r\nHo"], ids=["nothing", "half"])
async def test_a_request_on_its_way_when_the_server_stops_is_answered_then_closed(
    sent_before: bytes,
) -> None:
    """A connection accepted as the drain began, its request not read yet, is not cut: the
    request is answered, with "connection: close", and nothing is left to cut at the grace."""
    serving = Serving(reader_app, "127.0.0.1", 0)
    await serving.start()
    reader, writer = await connected(serving)
    try:
        writer.write(sent_before)
        stop = await stopping(serving, grace_s=30)
        request = head(Content_Length="3") + b"abc"
        writer.write(request[len(sent_before) :])
        raw = await within(reader.read(), timeout_s=10, what="the answer and the close")
        await within(stop, timeout_s=10, what="the stop")
    finally:
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:80]
    assert b"connection: close" in raw.split(b"\r\n\r\n", 1)[0].lower()
    assert answer(raw) == {"size": 3}
    assert not serving.server.force_exit, "the connection was cut at the grace, not closed"
    with pytest.raises(OSError):  # and the listener takes no more
        await asyncio.open_connection("127.0.0.1", serving.port)


async def test_an_idle_kept_connection_is_closed_when_the_server_stops_and_a_silent_one_cut() -> (
    None
):
    """An idle keep-alive connection is closed at the stop (its client knows one may close at any
    time); a fresh one that sends nothing holds the stop no longer than its grace."""
    serving = Serving(reader_app, "127.0.0.1", 0)
    await serving.start()
    reader, writer = await connected(serving)
    try:
        writer.write(head(Content_Length="1") + b"a")
        answered = await within(reader.readuntil(b'{"size":1}'), timeout_s=10, what="the answer")
        assert answer(answered) == {"size": 1}
        await within(await stopping(serving, grace_s=30), timeout_s=10, what="the stop")
        closed = await within(reader.read(), timeout_s=10, what="the close")
        assert closed == b""  # closed, nothing more sent
    finally:
        writer.close()
    assert not serving.server.force_exit, "the idle connection waited for the grace"

    silent = Serving(reader_app, "127.0.0.1", 0)
    await silent.start()
    reader, writer = await connected(silent)
    try:
        await within(await stopping(silent, grace_s=0.2), timeout_s=10, what="the stop")
        assert await within(reader.read(), timeout_s=10, what="the close") == b""
    finally:
        writer.close()
    assert silent.server.force_exit, "a connection that sent nothing was cut at the grace"
