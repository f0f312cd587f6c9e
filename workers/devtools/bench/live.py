"""``eventfleet bench live``: subscribers over rooms receiving stored events, next to the
strongest bare aiohttp + Redis Pub/Sub fan-out (``live_baseline``: each event serialized once
per transport, the bytes shared by every subscriber's buffer, one write per connection and loop
turn) delivering the same events, in one run, over SSE and WebSocket.

Rows (each subscriber checks it gets each event of its room exactly once, in version order):

- *store + feed*, per transport: the fan-out alone. The bench stores each chunk of events (not
  measured), then announces them on our feed's channels, one pipelined ``PUBLISH`` batch per
  version, as the appender would; the bare server gets the same bytes the same way. Measured
  from the first announcement of a chunk to the last subscriber reading its last event.
  Interleaved rounds, alternating which side goes first.
- *paced*, per transport: the same at ``PACE`` versions a second, for the latency of a
  delivery when neither side is saturated (CPU per delivered event there includes the fleet's
  idle work, which a slow rate spreads over fewer events).
- *command path* (SSE, one round): ``MessageSent`` commands over HTTP (marker, Kafka, appender,
  snapshots and projection on the same process); its latency is from the command's acceptance.

Latency of a fan-out row is from an event's announcement (after it was stored) to its being
read; CPU is the server process's over the measured windows, per delivered event; memory per
connection is the server's RSS growth over ``subscribers`` listening connections of each
transport, held open together, divided by their number.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import aiohttp
from redis.asyncio import Redis

from topics.envelope import Event, encode, new_event
from workers.devtools.bench.live_clients import Subscriber, close, connect, delivered, subscribers
from workers.devtools.bench.measure import Measured, Table, Target, cpu_seconds, latencies_ms
from workers.devtools.bench.procs import Server, server, worker
from workers.devtools.bench.progress import step
from workers.devtools.embedded import free_port
from workers.runtime.compose import Runtime

TRANSPORTS = ("sse", "websocket")
PACE = 10.0
"""Versions a second in the paced rows: with 1,000 subscribers over 100 rooms, 10,000
deliveries a second, which both sides keep up with: their latency is a delivery's, not a
queue's."""
PACED_VERSIONS = 30
DELIVERIES_PER_CHUNK = 50_000
"""Events stored, then announced and measured, at a time (far inside a heartbeat's store read)."""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Side:
    """One server under measurement: where its subscribers connect and how it is fed."""

    name: str
    target: Server
    channel: str  # the Pub/Sub channel of a room, with {room}
    ours: bool

    def url(self, room: str, via: str) -> str:
        base = (
            self.target.url.replace("http://", "ws://") if via == "websocket" else self.target.url
        )
        if self.ours:
            return f"{base}/v1/chat_room/{room}/subscribe"
        return f"{base}/{'ws' if via == 'websocket' else 'sub'}/{room}"


@contextlib.asynccontextmanager
async def _servers(
    env: Mapping[str, str], redis_url: str, connections: int
) -> AsyncIterator[tuple[Server, Server]]:
    """A fleet process of every role, taking ``connections`` live connections, and the
    shared-bytes fan-out server beside it."""
    base_port = free_port()
    fleet_env = {
        **env,
        "EVENTFLEET_AUTH": "none",
        "EVENTFLEET_LIVE_MAX_PER_PRINCIPAL": str(connections),
        "EVENTFLEET_LIVE_MAX_CONNECTIONS": str(connections),
    }
    async with (
        worker("eventfleet", "all", fleet_env, ready_path="/readyz") as fleet,
        server(
            "shared-bytes aiohttp + Redis Pub/Sub",
            ["workers.devtools.bench.live_baseline", str(base_port), redis_url, "bench-live:"],
            url=f"http://127.0.0.1:{base_port}",
            env={},
            ready_path=None,
        ) as bare,
    ):
        yield fleet, bare


async def bench_live(
    env: Mapping[str, str],
    *,
    runtime: Runtime,
    topic_prefix: str,
    redis_url: str,
    subscribers: int,
    rooms: int,
    messages: int,
    rounds: int = 3,
) -> Table:
    """Ours and the shared-bytes fan-out, each delivering ``messages`` to ``subscribers``, per
    transport; ``topic_prefix``: the fleet's (``env``'s), which names its live feed's channels
    too."""
    versions = max(1, messages // rooms)
    table = Table(
        f"live delivery ({subscribers} subscribers over {rooms} rooms, {versions * rooms} events "
        f"per row, {rounds} rounds; each subscriber checked: every event once, in order)"
    )
    connections = subscribers * (4 * rounds + 6)  # closed ones are let go at their next write
    step("live: starting a fleet process (every role) and the shared-bytes fan-out server")
    async with _servers(env, redis_url, connections) as (fleet, bare):
        feed_prefix = f"{topic_prefix}{await runtime.stores.store_id()}:live:a:"
        ours = Side("ours: store + feed", fleet, feed_prefix + "chat_room:{room}", True)
        theirs = Side("shared-bytes fan-out", bare, "bench-live:{room}", False)
        await _idle(fleet)
        redis = Redis.from_url(redis_url)
        try:
            memory = {
                side.name: await _memory(side, runtime, redis, rooms, subscribers)
                for side in (theirs, ours)
            }
            bare_sse: list[Measured] = []
            for via, pace in [(via, pace) for via in TRANSPORTS for pace in (None, PACE)]:
                mine: list[Measured] = []
                baseline: list[Measured] = []
                for n in range(rounds):
                    order = (theirs, ours) if n % 2 == 0 else (ours, theirs)
                    for side in order:
                        room_ids = [f"{via}-{pace}-{n}-{i}" for i in range(rooms)]
                        name = f"{side.name} → {via}, {memory[side.name][via]:.1f} KB/conn"
                        if pace is not None:
                            name = f"{side.name} → {via}, paced"
                        measured = await _fan_out(
                            side,
                            via,
                            runtime,
                            redis,
                            room_ids,
                            subscribers,
                            PACED_VERSIONS if pace else versions,
                            name=name,
                            pace=pace,
                        )
                        (mine if side.ours else baseline).append(measured)
                if pace is None:
                    table.add(mine, baseline, Target(rate_at_least=0.8, cpu_at_most=1.25))
                else:
                    table.add(mine, baseline, f"(latency at {PACE:g} versions/s)")
                bare_sse = bare_sse or baseline
            await _whole_path(table, fleet, rooms, subscribers, versions, bare_sse)
        finally:
            await redis.aclose()
    return table


async def _whole_path(
    table: Table, fleet: Server, rooms: int, subscribers: int, versions: int, bare: list[Measured]
) -> None:
    """The whole path (command -> SSE) saturating, beside the bare fan-out's SSE rows, then at
    half that capacity with its latencies."""
    room_ids = [f"cmd-{i}" for i in range(rooms)]
    command_path = await _commands(fleet, room_ids, subscribers, versions)
    table.add(command_path, bare, "(whole path, saturating: its rate is capacity)")
    half = command_path.rate / max(1, subscribers // rooms) / 2  # commands a second
    room_ids = [f"half-{i}" for i in range(rooms)]
    paced = await _commands(fleet, room_ids, subscribers, versions, per_s=half)
    a50, a99 = latencies_ms(_ANSWERS[:])
    met = "met" if (paced.p99_ms or 0) <= WHOLE_PATH_P99_MS else "NOT met"
    table.add(
        paced,
        None,
        f"(whole path at half capacity, {half:,.0f} commands/s; the command's own answer "
        f"p50 {a50:.1f} ms, p99 {a99:.1f} ms; p99 <= {WHOLE_PATH_P99_MS:g} ms: {met})",
    )


async def _idle(fleet: Server) -> None:
    before = cpu_seconds(fleet.pid)
    await asyncio.sleep(2.0)
    step(
        f"live: the fleet process idles at {(cpu_seconds(fleet.pid) - before) / 2 * 100:.1f}% "
        "of a core (every role; counted in its CPU per delivered event)"
    )


async def _memory(
    side: Side, runtime: Runtime, redis: Redis, rooms: int, count: int
) -> dict[str, float]:
    """The server's RSS growth per connection, per transport: ``count`` subscribers of each,
    listening (each read a first event), all held open until both are measured, so no memory
    a closed connection gave back is reused unseen."""
    held, kb = [], {}
    try:
        # A tenth as many first, held too: what the first connections of a process allocate
        # once (imports, pools, caches) is not counted per connection.
        for n, via in [(count // 10, via) for via in TRANSPORTS] + [(count, v) for v in TRANSPORTS]:
            step(f"live: memory of {n} {via} connections on {side.name}")
            room_ids = [f"mem-{n}-{via}-{i}" for i in range(rooms)]
            subs = subscribers(room_ids, n, partial(side.url, via=via))
            before = rss_kb(side.target.pid)
            held.append(await connect(subs, via, resume=side.ours))
            await _listening(side, runtime, redis, room_ids, subs)
            kb[via] = (rss_kb(side.target.pid) - before) / n
    finally:
        for session, tasks in held:
            await close(session, tasks)
    return kb


async def _fan_out(
    side: Side,
    via: str,
    runtime: Runtime,
    redis: Redis,
    rooms: list[str],
    count: int,
    versions: int,
    *,
    name: str,
    pace: float | None = None,
) -> Measured:
    """``count`` subscribers over ``rooms`` on ``side``, fed ``versions`` events per room: as
    fast as Redis takes them, or ``pace`` versions a second."""
    step(f"live: {count} {via} subscribers on {side.name}")
    subs = subscribers(rooms, count, partial(side.url, via=via))
    session, tasks = await connect(subs, via, resume=side.ours)
    try:
        await _listening(side, runtime, redis, rooms, subs)
        stamps: dict[int, float] = {}
        seconds = cpu = 0.0
        per_chunk = max(1, DELIVERIES_PER_CHUNK // count)
        for first in range(2, versions + 2, per_chunk):
            chunk = range(first, min(first + per_chunk, versions + 2))
            events = await _store(side, runtime, rooms, chunk)
            cpu_before, start = cpu_seconds(side.target.pid), time.monotonic()
            await _announce(side, redis, rooms, chunk, events, stamps, pace=pace)
            await delivered(subs, dict.fromkeys(rooms, chunk[-1]), 300)
            cpu += cpu_seconds(side.target.pid) - cpu_before
            seconds += max(s.last for s in subs) - start
    finally:
        await close(session, tasks)
    return _checked(name, subs, versions + 1, seconds, cpu, stamps)


async def _listening(
    side: Side, runtime: Runtime, redis: Redis, rooms: list[str], subs: list[Subscriber]
) -> None:
    """A first event to every room, read by every subscriber: it says each is listening (not
    measured)."""
    events = await _store(side, runtime, rooms, range(1, 2))
    await _announce(side, redis, rooms, range(1, 2), events, stamps={})
    await delivered(subs, dict.fromkeys(rooms, 1), 120)


async def _store(
    side: Side, runtime: Runtime, rooms: list[str], chunk: range
) -> dict[int, list[Event]]:
    """The chunk's events by version; ours are stored first (not measured), as the appender
    stores before it announces."""
    events = {
        version: [
            new_event(
                "chat_room",
                room,
                "MessageSent",
                {"message_id": f"m{version}", "sender_id": "b", "content": "hello"},
                version=version,
            )
            for room in rooms
        ]
        for version in chunk
    }
    if side.ours:
        flat = [event for version in chunk for event in events[version]]
        for start in range(0, len(flat), 1000):
            await runtime.events.append(flat[start : start + 1000])
    return events


async def _announce(
    side: Side,
    redis: Redis,
    rooms: list[str],
    chunk: range,
    events: Mapping[int, Sequence[Event]],
    stamps: dict[int, float],
    *,
    pace: float | None = None,
) -> None:
    start = time.monotonic()
    for n, version in enumerate(chunk):
        if pace is not None:
            await asyncio.sleep(max(0.0, start + n / pace - time.monotonic()))
        pipe = redis.pipeline(transaction=False)
        for room, event in zip(rooms, events[version], strict=True):
            pipe.publish(side.channel.format(room=room), encode(event))
        stamps[version] = time.time()
        await pipe.execute()


WHOLE_PATH_P99_MS = 50.0
"""The whole path's target at half the commands role's capacity: command to SSE delivery."""
_ANSWERS: list[float] = []
"""The commands' own answer times (seconds) of the last ``_commands`` run."""


async def _commands(
    fleet: Server, rooms: list[str], count: int, versions: int, *, per_s: float | None = None
) -> Measured:
    """Commands to every room (``versions`` each), with ``count`` SSE subscribers reading them:
    as fast as 64 connections go, or ``per_s`` a second, evenly spaced (each command's latency
    to delivery is measured from the time the fleet accepted it, its ``occurred_at``)."""
    pace = f", {per_s:,.0f}/s" if per_s else ""
    step(f"live: {count} SSE subscribers on the fleet, {versions * len(rooms)} commands{pace}")
    subs = subscribers(rooms, count, lambda room: f"{fleet.url}/v1/chat_room/{room}/subscribe")
    session, tasks = await connect(subs, "sse", resume=True, made=True)
    cpu_before, start = cpu_seconds(fleet.pid), time.monotonic()
    _ANSWERS.clear()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
            queue = [(room, i) for i in range(versions) for room in rooms]
            queue.reverse()  # popped in order: each room's versions one after another

            async def send(room: str, i: int) -> None:
                body = {
                    "type": "MessageSent",
                    "data": {"message_id": f"m{i}", "sender_id": "b", "content": "hello"},
                }
                sent = time.perf_counter()
                async with http.post(f"{fleet.url}/v1/chat_room/{room}/events", json=body) as r:
                    if r.status != 202:
                        raise RuntimeError(f"a command was answered {r.status}: {await r.text()}")
                _ANSWERS.append(time.perf_counter() - sent)

            async def sender() -> None:
                while queue:
                    await send(*queue.pop())

            if per_s is None:
                await asyncio.gather(*(sender() for _ in range(min(64, len(rooms)))))
            else:
                await _paced(queue, per_s, send)
        await delivered(subs, dict.fromkeys(rooms, versions), 600)
        seconds, cpu = max(s.last for s in subs) - start, cpu_seconds(fleet.pid) - cpu_before
    finally:
        await close(session, tasks)
    samples = [got - made for s in subs for got, made in zip(s.received, s.made, strict=True)]
    name = "ours: command path → sse" + (f" at {per_s:,.0f} commands/s" if per_s else "")
    return _measured(name, subs, versions, seconds, cpu, samples)


async def _paced(
    queue: list[tuple[str, int]],
    per_s: float,
    send: Callable[[str, int], Coroutine[object, object, None]],
) -> None:
    """Send what ``queue`` holds at ``per_s`` a second, each on time whatever the others take
    (a late answer does not hold the next send back)."""
    loop = asyncio.get_running_loop()
    begin, gap = loop.time(), 1.0 / per_s
    sent: list[asyncio.Task[None]] = []  # every one awaited at the end: a failed send raises
    while queue:
        due = begin + len(sent) * gap
        if due > loop.time():
            await asyncio.sleep(due - loop.time())  # the pace itself, not a wait for a result
        sent.append(asyncio.create_task(send(*queue.pop())))
    await asyncio.gather(*sent)


def _checked(
    name: str,
    subs: list[Subscriber],
    versions: int,
    seconds: float,
    cpu: float,
    stamps: Mapping[int, float],
) -> Measured:
    """The row's figures over the measured versions (the first one only said "listening")."""
    samples = [
        at - stamps[v] for s in subs for v, at in zip(s.got, s.received, strict=True) if v in stamps
    ]
    return _measured(name, subs, versions, seconds, cpu, samples, first=2)


def _measured(
    name: str,
    subs: list[Subscriber],
    versions: int,
    seconds: float,
    cpu: float,
    samples: list[float],
    *,
    first: int = 1,
) -> Measured:
    broken = [s for s in subs if s.broken or s.got != list(range(1, versions + 1))]
    if broken:
        raise RuntimeError(
            f"{name}: {len(broken)} subscribers saw a loss, repeat or reorder: "
            f"{broken[0].broken or broken[0].got[:10]}"
        )
    p50, p99 = latencies_ms(samples)
    label = f"{name}, {sum(s.resumed for s in subs)} resumes"
    return Measured(label, len(subs) * (versions - first + 1), seconds, p50, p99, cpu)
