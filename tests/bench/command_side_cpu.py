"""CPU per command of the async command side in process, for several checkouts in one run.

``python -m tests.bench.command_side_cpu [--rounds 8] [--count 6000] [--kind paid]
[--expected] DIR [DIR ...]``

Each DIR is a checkout (its ``topics``, ``snapshot_rules``, ``workers`` and
``tests/roles/command_side.py``), run in a process of its own (its PYTHONPATH): the dispatcher
with the real Redis marker and command memory (a private redis-server), the memory store and
producer, 64 concurrent callers, ``--count`` commands (``paid``: OrderPaid on orders placed
first; ``placed``: OrderPlaced on new ones, the filter ready), ``--expected`` with an
expected version. No HTTP, no Kafka: only the command side's own code and its Redis call, so a
change there shows without the HTTP layer's noise. Rounds rotate the checkouts; printed per
checkout: the median and the minimum of its CPU per command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.bench import run_script
from tests.orders import ITEMS
from workers.devtools.embedded import free_port
from workers.devtools.embedded.binaries import redis_server_bin


async def one(port: int, kind: str, count: int, expected: bool) -> float:
    """This process's CPU per command, on the checkout first on its path."""
    from redis.asyncio import Redis

    from snapshot_rules.domain import Domains
    from tests.roles.command_side import command_side
    from workers.adapters.memory import (
        MemoryAppendProgress,
        MemoryEventStore,
        MemoryProducer,
        MemoryRejections,
    )
    from workers.adapters.redis import SCRIPTS, RedisBatcher, RedisCommandMemory, RedisMarker
    from workers.examples.domains.order import ORDER
    from workers.metrics import create_metrics
    from workers.roles.command.requests import CommandRequest

    redis = Redis(port=port)
    metrics = create_metrics()
    batcher = RedisBatcher(redis, scripts=SCRIPTS, timeout_ms=5000, latency=metrics.marker_latency)
    prefix = f"b{uuid.uuid4().hex[:6]}:"
    marker = RedisMarker(batcher, prefix=prefix, ttl_s=600)
    await marker.mark_filter_ready()
    producer = MemoryProducer(default_partitions=4)
    side = command_side(
        domains=Domains([ORDER]), marker=marker, memory=RedisCommandMemory(batcher, prefix=prefix),
        store=MemoryEventStore(), rejections=MemoryRejections(), producer=producer,
        progress=MemoryAppendProgress(producer, "e"), events_topic="e", metrics=metrics,
    )  # fmt: skip
    orders = [f"o{uuid.uuid4().hex[:10]}" for _ in range(count)]
    extra = {"expected_version": 1 if kind == "paid" else 0} if expected else {}
    if kind == "paid":
        for start in range(0, count, 500):
            placing = orders[start : start + 500]
            await asyncio.gather(
                *(side.handle(CommandRequest("order", o, "OrderPlaced", ITEMS)) for o in placing)
            )
    queue = list(orders)

    async def caller() -> None:
        while queue:
            order = queue.pop()
            kind_type, data = (
                ("OrderPaid", {"amount": 2}) if kind == "paid" else ("OrderPlaced", ITEMS)
            )
            request = CommandRequest(
                "order", order, kind_type, data, command_id=f"c-{order}", **extra
            )  # type: ignore[arg-type]  # the one keyword, or none
            outcome = await side.handle(request)
            assert type(outcome).__name__ == "Accepted", outcome

    cpu = time.process_time()
    await asyncio.gather(*(caller() for _ in range(64)))
    cpu = time.process_time() - cpu
    await batcher.drain()
    await redis.aclose()
    return cpu / count * 1e6


def main(rounds: int, count: int, kind: str, expected: bool, checkouts: list[str]) -> None:
    port = free_port()
    redis = subprocess.Popen(
        [redis_server_bin(), "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # redis-server takes its port at once; a first call retries anyway
        found: dict[str, list[float]] = {c: [] for c in checkouts}
        for r in range(rounds):
            for checkout in checkouts[r % len(checkouts) :] + checkouts[: r % len(checkouts)]:
                argv = [sys.executable, __file__, "--one", str(port), kind, str(count)]
                env = {**os.environ, "PYTHONPATH": checkout}
                out = subprocess.run(
                    [*argv, *(["--expected"] if expected else [])], env=env, cwd=checkout,
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                found[checkout].append(json.loads(out)["cpu_us"])
                print(f"round {r + 1} {checkout}: {found[checkout][-1]:.1f} µs", file=sys.stderr)
    finally:
        redis.terminate()
        redis.wait()
    print(f"{kind}, {rounds} rounds of {count}{', with expected_version' if expected else ''}:")
    for checkout, cpu in found.items():
        print(f"  {checkout}: median {statistics.median(cpu):.1f} µs, min {min(cpu):.1f} µs "
              "CPU per command")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        port, kind, count = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        cpu_us = run_script(one(port, kind, count, "--expected" in sys.argv))
        print(json.dumps({"cpu_us": cpu_us}))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--kind", choices=("paid", "placed"), default="paid")
    parser.add_argument("--expected", action="store_true")
    parser.add_argument("checkouts", nargs="+", type=lambda p: str(Path(p).resolve()))
    a = parser.parse_args()
    main(a.rounds, a.count, a.kind, a.expected, a.checkouts)
