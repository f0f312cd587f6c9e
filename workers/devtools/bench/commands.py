"""The command path over HTTP next to the minimal servers doing the same work, interleaved.

Load comes from wrk (see ``wrk.py``). Rounds are interleaved and alternate which side goes
first, so a drift in the machine's load falls on both. At 64 connections ours is compared with the minimal
coalesced server (the strongest way known: every Redis call of a tick in one pipeline), at
1 connection with the minimal naive one (one EVALSHA, one produce). Both rows run for
OrderPaid on orders whose marks exist and for OrderPlaced on brand-new orders.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from workers.devtools.bench.measure import Measured, Table, Target, load_average
from workers.devtools.bench.procs import Server, load, server
from workers.devtools.bench.progress import step
from workers.devtools.embedded import free_port

ROWS = ((64, "paid"), (1, "paid"), (64, "placed"), (1, "placed"))


async def bench_http_commands(
    env: Mapping[str, str], *, kafka: str, redis: str, topic: str, count: int, rounds: int = 3
) -> Table:
    """Our commands role and both baselines, each in its own process, measured in turns."""
    ours_port, coalesced_port, naive_port = free_port(), free_port(), free_port()
    ours_env = {**env, "EVENTFLEET_HTTP_PORT": str(ours_port)}
    table = Table(
        f"command path over HTTP ({count} requests at 64 conn, {_small(count)} at 1 conn; "
        f"{rounds} interleaved rounds, alternating order; wrk; {load_average()})"
    )
    step("commands: starting our commands role and both baseline servers")
    async with (
        server(
            "eventfleet commands role",
            ["workers.cli", "worker", "--role", "commands"],
            url=f"http://127.0.0.1:{ours_port}",
            env=ours_env,
            ready_path="/readyz",
        ) as ours,
        server(
            "minimal coalesced server",
            [
                "workers.devtools.bench.baseline",
                "coalesced",
                str(coalesced_port),
                kafka,
                redis,
                topic,
            ],
            url=f"http://127.0.0.1:{coalesced_port}",
            env={},
            ready_path=None,
        ) as coalesced,
        server(
            "minimal naive server",
            ["workers.devtools.bench.baseline", "naive", str(naive_port), kafka, redis, topic],
            url=f"http://127.0.0.1:{naive_port}",
            env={},
            ready_path=None,
        ) as naive,
    ):
        for clients, kind in ROWS:
            baseline_server = coalesced if clients > 1 else naive
            n = count if clients > 1 else _small(count)
            theirs: list[Measured] = []
            mine: list[Measured] = []
            for r in range(rounds):
                step(f"commands: {clients} conn, {kind}, round {r + 1} of {rounds} ({n} requests)")
                order = (baseline_server, ours) if r % 2 == 0 else (ours, baseline_server)
                for side in order:
                    measured = await _run(side, clients, n, kind)
                    (mine if side is ours else theirs).append(measured)
            target = (
                Target(rate_at_least=0.8, cpu_at_most=1.3, p99_at_most=1.5)
                if clients > 1
                else Target(rate_at_least=0.9)
            )
            table.add(mine, theirs, target)
    return table


async def _run(target: Server, clients: int, n: int, kind: str) -> Measured:
    return await load(target, clients, n, f"b{uuid.uuid4().hex[:8]}", kind)


def _small(count: int) -> int:
    return max(200, count // 10)
