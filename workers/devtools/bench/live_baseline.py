"""The baseline of ``eventfleet bench live``: the strongest bare fan-out of Redis Pub/Sub to SSE
and WebSocket subscribers on aiohttp we know how to write.

Each message is serialized once per transport into its wire form (an SSE message as one
HTTP/1.1 chunk; an unmasked WebSocket text frame), and those bytes are shared by every
subscriber's buffer: a subscriber costs a list append per event. What a connection's buffer
holds at the end of a loop turn goes out in one write on the connection's own transport, as
the Pub/Sub reader heard it: no task, queue or copy per connection or message. Nothing else
either: no store, positions, gap filling, limits, bound on what waits for a slow client,
heartbeats or metrics.

``python -m workers.devtools.bench.live_baseline PORT REDIS_URL PREFIX``: ``GET /sub/{room}``
streams every message published on ``PREFIX{room}`` as an SSE ``data:`` line, ``GET /ws/{room}``
sends each as a WebSocket text message; prints ``ready``.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web
from redis.asyncio import Redis

from workers.devtools.bench.baseline import same_loop
from workers.http.live.shared import text_frame


class Buffer:
    """One connection's frames this loop turn, written at its end."""

    __slots__ = ("frames", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.frames: list[bytes] = []


class FanOut:
    """Every subscriber of the process, by room and transport."""

    def __init__(self, prefix: str) -> None:
        self._prefix = len(prefix)
        self.sse: dict[bytes, list[Buffer]] = {}
        self.ws: dict[bytes, list[Buffer]] = {}
        self._dirty: list[Buffer] = []
        self._scheduled = False

    def publish(self, channel: bytes, data: bytes) -> None:
        """One message: serialized once per transport with subscribers, shared by them all."""
        room = channel[self._prefix :]
        sse, ws = self.sse.get(room), self.ws.get(room)
        if sse:
            message = b"data: %s\n\n" % data
            self._add(sse, b"%x\r\n%s\r\n" % (len(message), message))
        if ws:
            self._add(ws, text_frame(data))

    def _add(self, buffers: list[Buffer], frame: bytes) -> None:
        dirty = self._dirty
        for buffer in buffers:
            if not buffer.frames:
                dirty.append(buffer)
            buffer.frames.append(frame)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for buffer in dirty:
            frames, buffer.frames = buffer.frames, []
            if not buffer.transport.is_closing():
                buffer.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))


async def main(port: int, redis_url: str, prefix: str) -> None:
    fan_out = FanOut(prefix)
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"{prefix}*")

    async def read() -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                fan_out.publish(message["channel"], message["data"])

    async def subscribe(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b": ready\n\n")
        assert request.transport is not None
        buffer = Buffer(request.transport)
        listeners = fan_out.sse.setdefault(request.match_info["room"].encode(), [])
        listeners.append(buffer)
        try:
            await asyncio.Future()  # cancelled when the client leaves (handler_cancellation)
        finally:
            listeners.remove(buffer)
        return response

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert request.transport is not None
        buffer = Buffer(request.transport)
        listeners = fan_out.ws.setdefault(request.match_info["room"].encode(), [])
        listeners.append(buffer)
        try:
            async for _ in ws:  # control frames are handled while reading
                pass
        finally:
            listeners.remove(buffer)  # before the close frame: nothing may follow it
        return ws

    app = web.Application()
    app.router.add_get("/sub/{room}", subscribe)
    app.router.add_get("/ws/{room}", websocket)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    task = asyncio.create_task(read())
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        task.cancel()


if __name__ == "__main__":
    same_loop(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
