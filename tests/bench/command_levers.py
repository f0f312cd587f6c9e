"""The commands role of several checkouts (one per lever) against one baseline, in one run.

``python -m tests.bench.command_levers [--rounds 3] [--count 4000] [--kind paid] [--conns 64]
DIR [DIR ...]``

Each DIR is a checkout (its ``topics``, ``snapshot_rules`` and ``workers``) run as its own
commands worker (its PYTHONPATH), next to the coalesced baseline (the naive one at 1
connection) on one embedded stack; every round measures the baseline and each checkout with
``eventfleet bench``'s own load (wrk; ``paid``: orders placed first, sized to the run), in an
order rotated each round. Printed per checkout: the median of its paired ratios to the
baseline's round (rate, CPU per request, p99) and its median CPU per request: on a shared
machine one run that holds every lever compares them better than one bench run per lever.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from contextlib import AsyncExitStack

from tests.bench import run_script
from topics.catalog import TopicSpec
from workers.adapters.kafka import ensure_topics
from workers.devtools.bench import worker_env
from workers.devtools.bench.measure import Measured
from workers.devtools.bench.procs import Server, load, server
from workers.devtools.bench.stack import bench_settings, bench_stack
from workers.devtools.embedded import free_port
from workers.runtime.connections import fleet_catalog
from workers.runtime.settings import Settings


async def main(rounds: int, count: int, kind: str, conns: int, checkouts: list[str]) -> None:
    run = uuid.uuid4().hex[:6]
    async with bench_stack(bench_settings(Settings.from_env(), run)) as bench:
        settings, runtime = bench.settings, bench.runtime
        topic = f"{settings.topic_prefix}bench-baseline"
        same = TopicSpec(topic, settings.partitions, settings.replication)
        await ensure_topics(runtime.kafka, [*fleet_catalog(settings, runtime.domains), same])
        await measure(settings, topic, rounds, count, kind, conns, checkouts, run)


async def measure(
    settings: Settings, topic: str, rounds: int, count: int, kind: str, conns: int,
    checkouts: list[str], run: str,
) -> None:  # fmt: skip
    env = worker_env(settings)
    async with AsyncExitStack() as started:
        port = free_port()
        mode = "coalesced" if conns > 1 else "naive"
        argv = ["workers.devtools.bench.baseline", mode, str(port),
                ",".join(settings.kafka_bootstrap), settings.redis_url, topic]  # fmt: skip
        baseline = await started.enter_async_context(
            server("baseline", argv, url=f"http://127.0.0.1:{port}", env={}, ready_path=None)
        )
        sides: list[Server] = [baseline]
        for n, checkout in enumerate(checkouts):
            port = free_port()
            own = {**env, "EVENTFLEET_HTTP_PORT": str(port), "PYTHONPATH": checkout,
                   "EVENTFLEET_GROUP_ID": f"bench-{run}-{n}"}  # fmt: skip
            sides.append(await started.enter_async_context(server(
                checkout, ["workers.cli", "worker", "--role", "commands"],
                url=f"http://127.0.0.1:{port}", env=own, ready_path="/readyz", cwd=checkout,
            )))  # fmt: skip
        found: dict[str, list[Measured]] = {side.name: [] for side in sides}
        for r in range(rounds):
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                measured = await load(side, conns, count, f"b{uuid.uuid4().hex[:8]}", kind)
                found[side.name].append(measured)
                cpu = (measured.cpu_per_item_ms or 0) * 1000
                print(f"round {r + 1} {side.name}: {measured.rate:,.0f}/s, {cpu:.0f} µs CPU, "
                      f"p99 {measured.p99_ms:.1f} ms", file=sys.stderr, flush=True)  # fmt: skip
    theirs = found["baseline"]
    print(f"{conns} conn, {kind}, {rounds} rounds of {count}: baseline {mode}, median "
          f"{statistics.median(m.rate for m in theirs):,.0f}/s")  # fmt: skip
    for checkout in checkouts:
        ours = found[checkout]
        pairs = list(zip(ours, theirs, strict=True))
        rate = statistics.median(o.rate / t.rate for o, t in pairs)
        cpu = statistics.median(
            (o.cpu_per_item_ms or 0) / (t.cpu_per_item_ms or 1) for o, t in pairs
        )
        p99 = statistics.median((o.p99_ms or 0) / (t.p99_ms or 1) for o, t in pairs)
        own_cpu = statistics.median((m.cpu_per_item_ms or 0) * 1000 for m in ours)
        print(f"  {checkout}: rate {rate:.2f}x, CPU {cpu:.2f}x, p99 {p99:.2f}x "
              f"({own_cpu:.0f} µs CPU per request)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--kind", choices=("paid", "placed"), default="paid")
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("checkouts", nargs="+")
    a = parser.parse_args()
    run_script(main(a.rounds, a.count, a.kind, a.conns, a.checkouts))
