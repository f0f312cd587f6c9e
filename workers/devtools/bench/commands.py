"""The command path over HTTP next to the minimal servers doing the same work, interleaved.

Load comes from wrk (see ``wrk.py``). Rounds are interleaved and rotate which side goes first,
so a drift in the machine's load falls on every side. At 64 connections ours is compared with
the minimal coalesced aiohttp server (every Redis call of a tick in one pipeline) and with the
floor (the same work on uvicorn's httptools protocol with a bare ASGI callable: the leanest
server on well-kept parts), at 1 connection with the minimal naive one (one EVALSHA, one
produce). Every row runs for OrderPaid on orders whose marks exist and for OrderPlaced on
brand-new orders. Before any round, every side is checked to do the work it is measured for
(``checked``): a mark set, a refused transition answered 409, each accepted record on its topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

from workers.devtools.bench.measure import Measured, Table, Target, load_average
from workers.devtools.bench.procs import Server, checked, load, server, worker
from workers.devtools.bench.progress import step
from workers.devtools.embedded import free_port

ROWS = ((64, "paid"), (1, "paid"), (64, "placed"), (1, "placed"))


async def bench_http_commands(
    env: Mapping[str, str],
    *,
    kafka: str,
    redis: str,
    topic: str,
    events_topic: str,
    count: int,
    rounds: int = 3,
) -> Table:
    """Our commands role and both baselines, each in its own process, measured in turns."""
    coalesced_port, naive_port, floor_port = free_port(), free_port(), free_port()
    topics = {
        "eventfleet commands role": events_topic,
        "minimal coalesced server": topic,
        "minimal naive server": topic,
        "floor server": topic,
    }
    table = Table(
        f"command path over HTTP ({count} requests at 64 conn, {_small(count)} at 1 conn; "
        f"{rounds} interleaved rounds, alternating order; wrk; {load_average()})"
    )
    step("commands: starting our commands role and both baseline servers")
    async with (
        worker("eventfleet commands role", "commands", env, ready_path="/readyz") as ours,
        _baseline(
            "minimal coalesced server", "coalesced", coalesced_port, kafka, redis, topic
        ) as coalesced,
        _baseline("minimal naive server", "naive", naive_port, kafka, redis, topic) as naive,
        _baseline("floor server", "floor", floor_port, kafka, redis, topic) as floor,
    ):
        step("commands: checking every side does the work it is measured for")
        for side in (ours, coalesced, naive, floor):
            await checked(side, kafka, topics[side.name])
        for clients, kind in ROWS:
            sides = [coalesced, floor, ours] if clients > 1 else [naive, ours]
            n = count if clients > 1 else _small(count)
            measured: dict[str, list[Measured]] = {side.name: [] for side in sides}
            for r in range(rounds):
                step(f"commands: {clients} conn, {kind}, round {r + 1} of {rounds} ({n} requests)")
                for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                    run = f"b{uuid.uuid4().hex[:8]}"
                    measured[side.name].append(await load(side, clients, n, run, kind))
            mine = measured[ours.name]
            if clients > 1:
                table.add(
                    mine, measured[coalesced.name], Target(rate_at_least=1.5, cpu_at_most=0.65)
                )
                table.add(mine, measured[floor.name], Target(cpu_at_most=1.6))
            else:
                table.add(mine, measured[naive.name], Target(rate_at_least=1.2))
    return table


def _baseline(
    name: str, kind: str, port: int, kafka: str, redis: str, topic: str
) -> AbstractAsyncContextManager[Server]:
    """A baseline server of ``kind`` (``workers.devtools.bench.baseline``) on ``port``."""
    argv = ["workers.devtools.bench.baseline", kind, str(port), kafka, redis, topic]
    return server(name, argv, url=f"http://127.0.0.1:{port}", env={}, ready_path=None)


def _small(count: int) -> int:
    return max(200, count // 10)
