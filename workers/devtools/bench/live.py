"""``eventfleet bench live``: subscribers over rooms receiving messages sent through the command
path, next to a bare aiohttp + Redis Pub/Sub fan-out delivering the same messages, in one run.

Every subscriber counts what it gets and checks it: each of its room's events exactly once,
in version order (ours) or in publish order (the baseline). Latency is from the event being
made (its ``occurred_at``; the baseline's publish time) to being read by the subscriber; the
servers' CPU is measured over the delivery only, per delivered event; memory per connection is
the server's RSS growth over the connections, divided by their number.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
import orjson
from redis.asyncio import Redis

from topics.envelope import encode, new_event
from workers.devtools.bench.measure import Measured, Table, cpu_seconds, latencies_ms
from workers.devtools.bench.procs import Server, server
from workers.devtools.bench.progress import step
from workers.devtools.embedded import free_port
from workers.runtime.compose import Runtime


@dataclass
class Subscriber:
    room: str
    got: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    broken: str | None = None
    resumed: int = 0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def read_sse(
    session: aiohttp.ClientSession, url: str, sub: Subscriber, ready: asyncio.Event, *, ours: bool
) -> None:
    """Read one subscription; ours resumes with Last-Event-ID when the server closes it (as a
    browser's EventSource does), and the count must still come out exactly once, in order."""
    while True:
        headers = {"Accept": "text/event-stream"}
        if ours and sub.got:
            headers["Last-Event-ID"] = str(sub.got[-1])
            sub.resumed += 1
        try:
            await _read_once(session, url, sub, ready, headers, ours=ours)
        except (aiohttp.ClientError, ConnectionError):
            pass
        if not ours or sub.broken is not None:
            return
        await asyncio.sleep(0.2)


async def _read_once(session: aiohttp.ClientSession, url: str, sub: Subscriber,
                     ready: asyncio.Event, headers: dict[str, str], *, ours: bool) -> None:  # fmt: skip
    async with session.get(url, headers=headers) as response:
        if response.status != 200:
            sub.broken = f"answered {response.status}: {await response.text()}"
            ready.set()
            return
        async for raw in response.content:
            line = raw.rstrip(b"\n")
            if line.startswith(b":") or line.startswith(b"retry"):
                ready.set()
            if not line.startswith(b"data: "):
                continue
            data = orjson.loads(line[6:])
            if "error" in data:
                continue  # a slow_client notice: the loop resumes
            now = time.time()
            if ours:
                version, made = data["version"], datetime.fromisoformat(data["occurred_at"])
                made_s = made.timestamp()
            else:
                version, made_s = data["n"], data["at"]
            if version != len(sub.got) + 1 and sub.broken is None:
                sub.broken = f"got {version} after {len(sub.got)}"
            sub.got.append(version)
            sub.latencies.append(now - made_s)


async def _subscribe_all(
    urls: list[tuple[str, str]], *, ours: bool
) -> tuple[aiohttp.ClientSession, list[Subscriber], list[asyncio.Task[None]]]:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    subs, tasks = [], []
    for room, url in urls:
        sub, ready = Subscriber(room), asyncio.Event()
        subs.append(sub)
        tasks.append(asyncio.create_task(read_sse(session, url, sub, ready, ours=ours)))
        await asyncio.wait_for(ready.wait(), 30)
        if sub.broken is not None:
            raise RuntimeError(f"a subscription was refused: {sub.broken}")
    return session, subs, tasks


async def _delivered(subs: list[Subscriber], expected: Mapping[str, int], timeout_s: float) -> float:
    """Wait until every subscriber has its room's count; the time it took."""
    start = time.monotonic()
    while any(len(s.got) < expected[s.room] for s in subs):
        if time.monotonic() - start > timeout_s:
            short = sum(1 for s in subs if len(s.got) < expected[s.room])
            raise RuntimeError(f"{short} subscribers did not get every event in {timeout_s}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def _checked(name: str, subs: list[Subscriber], expected: Mapping[str, int], seconds: float,
             cpu: float, rss: int) -> Measured:  # fmt: skip
    broken = [s for s in subs if s.broken or s.got != list(range(1, expected[s.room] + 1))]
    if broken:
        raise RuntimeError(f"{name}: {len(broken)} subscribers saw a loss, repeat or reorder: "
                           f"{broken[0].broken or broken[0].got[:10]}")  # fmt: skip
    samples = [x for s in subs for x in s.latencies]
    p50, p99 = latencies_ms(samples)
    resumed = sum(s.resumed for s in subs)
    label = f"{name}, {rss // max(1, len(subs))} KB/conn, {resumed} resumes"
    return Measured(label, len(samples), seconds, p50, p99, cpu)


async def bench_live(
    env: Mapping[str, str],
    *,
    runtime: Runtime,
    redis_url: str,
    subscribers: int,
    rooms: int,
    messages: int,
) -> Table:
    """Ours and the bare fan-out, each delivering ``messages`` to ``subscribers``."""
    room_ids = [f"live-{i}" for i in range(rooms)]
    expected = {r: messages // rooms + (1 if i < messages % rooms else 0)
                for i, r in enumerate(room_ids)}  # fmt: skip
    table = Table(
        f"live delivery ({subscribers} SSE subscribers over {rooms} rooms, {messages} messages; "
        "each subscriber checked: every event once, in order)"
    )
    port, base_port = free_port(), free_port()
    step("live: starting a fleet process (every role) and the bare fan-out server")
    async with (
        server("eventfleet", ["workers.cli", "worker", "--role", "all"],
               url=f"http://127.0.0.1:{port}", ready_path="/readyz",
               env={**env, "EVENTFLEET_HTTP_PORT": str(port), "EVENTFLEET_AUTH": "none",
                    # the closed connections of one row are released at their next heartbeat
                    "EVENTFLEET_LIVE_MAX_PER_PRINCIPAL": str(3 * subscribers),
                    "EVENTFLEET_LIVE_MAX_CONNECTIONS": str(3 * subscribers)}) as ours,
        server("bare aiohttp + Redis Pub/Sub", ["workers.devtools.bench.live_baseline",
               str(base_port), redis_url, "bench-live:"],
               url=f"http://127.0.0.1:{base_port}", env={}, ready_path=None) as bare,
    ):  # fmt: skip
        bare_row = await _bare(bare, redis_url, room_ids, subscribers, expected)
        feed_rooms = [f"feed-{r}" for r in room_ids]
        feed_expected = {f"feed-{r}": n for r, n in expected.items()}
        table.add(
            await _feed_only(ours, runtime, redis_url, feed_rooms, subscribers, feed_expected),
            bare_row,
            "≥ 0.8x rate, ≤ 1.25x CPU/event",
        )
        table.add(await _ours(ours, room_ids, subscribers, expected), bare_row, "(whole path)")
    return table


async def _feed_only(target: Server, runtime: Runtime, redis_url: str, rooms: list[str],
                     count: int, expected: Mapping[str, int]) -> Measured:  # fmt: skip
    """Our fan-out alone: events stored straight into the store and announced on our feed's
    channels by this process, as the appender would, without the command path."""
    step(f"live: {count} subscribers on the fleet, fed by the feed alone")
    rss_before = rss_kb(target.pid)
    urls = [(rooms[i % len(rooms)], f"{target.url}/v1/chat_room/{rooms[i % len(rooms)]}/subscribe")
            for i in range(count)]  # fmt: skip
    session, subs, tasks = await _subscribe_all(urls, ours=True)
    rss = rss_kb(target.pid) - rss_before
    prefix = f"{runtime.settings.topic_prefix}{await runtime.stores.store_id()}:live:a:"
    redis = Redis.from_url(redis_url)
    cpu_before = cpu_seconds(target.pid)
    start = time.monotonic()
    try:
        for version in range(1, max(expected.values()) + 1):
            batch = [new_event("chat_room", room, "MessageSent", {
                "message_id": f"m{version}", "sender_id": "b", "content": "hello"}, version=version)
                for room, n in expected.items() if version <= n]  # fmt: skip
            await runtime.events.append(batch)
            pipe = redis.pipeline(transaction=False)
            for event in batch:
                pipe.publish(f"{prefix}chat_room:{event.aggregate_id}", encode(event))
            await pipe.execute()
        await _delivered(subs, expected, 300)
    finally:
        await redis.aclose()
    seconds, cpu = time.monotonic() - start, cpu_seconds(target.pid) - cpu_before
    await _close(session, tasks)
    return _checked("eventfleet: store + feed to SSE", subs, expected, seconds, cpu, rss)


async def _ours(target: Server, rooms: list[str], count: int, expected: Mapping[str, int]) -> Measured:
    step(f"live: {count} subscribers on the fleet")
    rss_before = rss_kb(target.pid)
    urls = [(rooms[i % len(rooms)], f"{target.url}/v1/chat_room/{rooms[i % len(rooms)]}/subscribe")
            for i in range(count)]  # fmt: skip
    session, subs, tasks = await _subscribe_all(urls, ours=True)
    rss = rss_kb(target.pid) - rss_before
    step(f"live: {sum(expected.values())} messages through the command path")
    cpu_before = cpu_seconds(target.pid)
    start = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        for room, n in expected.items():
            for i in range(n):
                queue.put_nowait((room, i))

        async def sender() -> None:
            while not queue.empty():
                room, i = queue.get_nowait()
                body = {"type": "MessageSent", "data": {"message_id": f"m{i}", "sender_id": "b",
                                                         "content": "hello"}}  # fmt: skip
                async with http.post(f"{target.url}/v1/chat_room/{room}/events", json=body) as r:
                    if r.status != 202:
                        raise RuntimeError(f"a command was answered {r.status}: {await r.text()}")

        # One sender per room at a time keeps each room's order; 64 rooms in parallel.
        await asyncio.gather(*(sender() for _ in range(min(64, len(rooms)))))
    await _delivered(subs, expected, 300)
    seconds, cpu = time.monotonic() - start, cpu_seconds(target.pid) - cpu_before
    await _close(session, tasks)
    return _checked("eventfleet: command path to SSE", subs, expected, seconds, cpu, rss)


async def _bare(target: Server, redis_url: str, rooms: list[str], count: int,
                expected: Mapping[str, int]) -> Measured:  # fmt: skip
    step(f"live: {count} subscribers on the bare fan-out")
    rss_before = rss_kb(target.pid)
    urls = [(rooms[i % len(rooms)], f"{target.url}/sub/{rooms[i % len(rooms)]}")
            for i in range(count)]  # fmt: skip
    session, subs, tasks = await _subscribe_all(urls, ours=False)
    rss = rss_kb(target.pid) - rss_before
    redis = Redis.from_url(redis_url)
    cpu_before = cpu_seconds(target.pid)
    start = time.monotonic()
    try:
        for room, n in expected.items():
            for i in range(1, n + 1):
                await redis.publish(f"bench-live:{room}", orjson.dumps({"n": i, "at": time.time()}))
        await _delivered(subs, expected, 300)
    finally:
        await redis.aclose()
    seconds, cpu = time.monotonic() - start, cpu_seconds(target.pid) - cpu_before
    await _close(session, tasks)
    return _checked("bare aiohttp + Pub/Sub fan-out", subs, expected, seconds, cpu, rss)


async def _close(session: aiohttp.ClientSession, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
