"""Answers that go on: an event stream (SSE) written piece by piece, and a WebSocket.

A route that streams returns ``STREAMED`` once it has written everything; the dispatcher then
ends the response. A WebSocket route accepts (``WebSocket.accept``), or answers an HTTP refusal
before accepting (the server sends it as the handshake's answer, status and JSON body).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from workers.http.edge.request import Message, Request
from workers.http.edge.responses import SECURITY_RAW, RawHeaders, Response

STREAMED = Response(b"", 200, content_type=None)
"""What a route returns once it wrote its own answer (a stream, a WebSocket)."""


class EventStream:
    """A response body sent as it is made (``write``); started by ``Request.stream``."""

    __slots__ = ("_send", "closed", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self._send = request._send  # the stream is the request's own answer
        self.closed = False

    async def start(self, status: int, headers: dict[str, str]) -> None:
        raw: RawHeaders = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        names = {name for name, _ in raw}
        raw.extend(pair for pair in SECURITY_RAW if pair[0] not in names)
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def write(self, data: bytes) -> None:
        """Send ``data`` now; ConnectionError once the client has left."""
        if self.closed:
            raise ConnectionError("the event stream is closed")
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
        except OSError as e:  # the server's own word for a client that left
            self.closed = True
            raise ConnectionError(str(e)) from e
        if self.request.gone():
            self.closed = True
            raise ConnectionError("the client left")

    async def end(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass


async def stream(request: Request, headers: dict[str, str], status: int = 200) -> EventStream:
    """Start an answer whose body follows in pieces."""
    out = EventStream(request)
    await out.start(status, headers)
    return out


@dataclass(frozen=True, slots=True)
class Incoming:
    """A WebSocket message from the client: text or bytes; ``closed`` once it closed."""

    text: str | None = None
    data: bytes | None = None
    closed: bool = False
    code: int | None = None


class WebSocket:
    """One accepted WebSocket, over the server's ASGI messages."""

    __slots__ = ("_receive", "_send", "close_code", "closed", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self._receive = request._receive
        self._send = request._send
        self.closed = False
        self.close_code: int | None = None

    async def accept(self) -> None:
        message: Message = await self._receive()
        if message["type"] != "websocket.connect":
            raise ConnectionError(f"the client left before the WebSocket opened ({message})")
        await self._send({"type": "websocket.accept", "headers": list(SECURITY_RAW)})

    async def send_text(self, data: str | bytes) -> None:
        """One text message (UTF-8 bytes are sent as they are)."""
        if self.closed:
            raise ConnectionError("the WebSocket is closed")
        text = data.decode() if isinstance(data, bytes) else data
        try:
            await self._send({"type": "websocket.send", "text": text})
        except (OSError, RuntimeError) as e:  # RuntimeError: uvicorn closed it meanwhile (ping)
            self.closed = True
            raise ConnectionError(str(e)) from e

    async def receive(self) -> Incoming:
        if self.closed:
            return Incoming(closed=True, code=self.close_code)
        message: Message = await self._receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text, data = message.get("text"), message.get("bytes")
            return Incoming(
                text=text if isinstance(text, str) else None,
                data=data if isinstance(data, bytes) else None,
            )
        self.closed = True
        code = message.get("code")
        self.close_code = code if isinstance(code, int) else None
        return Incoming(closed=True, code=self.close_code)

    async def __aiter__(self) -> AsyncIterator[Incoming]:
        while True:
            message = await self.receive()
            if message.closed:
                return
            yield message

    async def close(self, code: int = 1000, reason: str | bytes = "") -> None:
        """Close with ``code`` and ``reason`` (at most 123 bytes); nothing follows."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        text = reason.decode() if isinstance(reason, bytes) else reason
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": text})
        except (OSError, RuntimeError):
            pass  # the client left first


async def deny(request: Request, response: Response) -> None:
    """Answer a WebSocket handshake with an HTTP refusal (its status, headers and body)."""
    await request._send(
        {
            "type": "websocket.http.response.start",
            "status": response.status,
            "headers": response.raw_headers(),
        }
    )
    await request._send({"type": "websocket.http.response.body", "body": response.body})
