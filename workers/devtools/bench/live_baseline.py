"""The baseline of ``eventfleet bench live``: a bare aiohttp server fanning Redis Pub/Sub out to
SSE and WebSocket subscribers, the least a live fan-out can do (no store, no positions, no gap
filling, no limits, no heartbeats, no metrics).

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


async def main(port: int, redis_url: str, prefix: str) -> None:
    listeners: dict[str, set[asyncio.Queue[bytes]]] = {}
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"{prefix}*")

    async def fan_out() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            room = message["channel"].decode()[len(prefix) :]
            for queue in listeners.get(room, ()):
                queue.put_nowait(message["data"])

    async def subscribe(request: web.Request) -> web.StreamResponse:
        room = request.match_info["room"]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        listeners.setdefault(room, set()).add(queue)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            await response.write(b": ready\n\n")
            while True:
                data = await queue.get()
                await response.write(b"data: " + data + b"\n\n")
        finally:
            listeners[room].discard(queue)
        return response

    async def websocket(request: web.Request) -> web.StreamResponse:
        room = request.match_info["room"]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        listeners.setdefault(room, set()).add(queue)
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def send() -> None:
            while True:
                data = await queue.get()
                await ws.send_str(data.decode())

        sender = asyncio.create_task(send())
        try:
            async for _ in ws:  # control frames are handled while reading
                pass
        finally:
            listeners[room].discard(queue)
            sender.cancel()
        return ws

    app = web.Application()
    app.router.add_get("/sub/{room}", subscribe)
    app.router.add_get("/ws/{room}", websocket)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    task = asyncio.create_task(fan_out())
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        task.cancel()


if __name__ == "__main__":
    same_loop(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
