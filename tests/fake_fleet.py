"""A fleet's HTTP API played from a script, on a real socket (uvicorn in a thread): for the
client's answers that a live fleet gives only by accident or never (a 429 at a chosen moment, a
stream cut in the middle of a message, a proxy's page). Each request takes the next reply queued
for its method and path; what was asked is kept for the test to read."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import uvicorn

SSE = "text/event-stream"


@dataclass(frozen=True)
class Reply:
    """One answer: a status, headers and the body's parts. ``then``: after the parts, ``end``
    the body, ``drop`` the connection mid-body, or ``hold`` it open until the client leaves."""

    status: int = 200
    parts: tuple[bytes, ...] = ()
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    then: str = "end"


def json_reply(status: int, body: object, **headers: str) -> Reply:
    pairs = (("content-type", "application/json"), *((k.replace("_", "-"), v)
             for k, v in headers.items()))  # fmt: skip
    return Reply(status, (orjson.dumps(body),), pairs)


def sse(event_id: str, data: object, event: str = "") -> bytes:
    """One Server-Sent Event as the fleet writes it."""
    named = f"event: {event}\n" if event else ""
    return f"id: {event_id}\n{named}data: {orjson.dumps(data).decode()}\n\n".encode()


def envelope(aggregate_id: str, version: int, aggregate_type: str = "order") -> dict[str, Any]:
    return {"id": f"e-{aggregate_id}-{version}", "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id, "type": "OrderPaid", "version": version,
            "data": {"amount": version}, "metadata": {"command_id": f"c-{version}"},
            "occurred_at": "2026-01-01T00:00:00Z"}  # fmt: skip


@dataclass(frozen=True)
class Asked:
    """One request the fake was sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class FakeFleet:
    """The script (``reply``) and what was asked (``asked``); ``url`` once started."""

    url: str = ""
    asked: list[Asked] = field(default_factory=list)
    _script: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, method: str, path: str, *replies: Reply) -> None:
        with self._lock:
            self._script.setdefault((method, path), []).extend(replies)

    def to(self, path: str) -> list[Asked]:
        return [a for a in self.asked if a.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = dict(parse_qsl(scope["query_string"].decode()))
        key = (scope["method"], scope["path"])
        with self._lock:
            self.asked.append(Asked(*key, query, headers, body, time.monotonic()))
            queued = self._script.get(key, [])
            reply = queued.pop(0) if queued else json_reply(
                404, {"error": "route_not_found", "message": f"the script has no {key}"})  # fmt: skip
        await _play(reply, send, receive)


async def _play(reply: Reply, send: Any, receive: Any) -> None:
    headers = [(k.encode(), v.encode()) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    for part in reply.parts:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    if reply.then == "drop":
        raise ConnectionAbortedError("the script cuts the connection here")
    if reply.then == "hold":
        while (await receive())["type"] != "http.disconnect":
            pass
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@contextmanager
def fake_fleet() -> Iterator[FakeFleet]:
    """A ``FakeFleet`` serving on 127.0.0.1 until the block ends."""
    fake = FakeFleet()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(fake, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake fleet did not start within 10 s")
        time.sleep(0.01)  # a thread, not a loop: tests.waiting is for coroutines
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
