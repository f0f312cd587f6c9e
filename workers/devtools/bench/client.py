"""Load generator for the HTTP benchmarks, in its own process so it takes no server CPU.

``python -m workers.devtools.bench.client URL CLIENTS COUNT RUN KIND``. KIND ``paid``: the
orders are placed first (a setup phase; then one line ``{"setup": true}`` and a wait for a
line on stdin), then OrderPaid is measured on orders whose marks exist; KIND ``placed``:
OrderPlaced on brand-new orders is measured. Prints one JSON line:
``{"count", "seconds", "p50_ms", "p99_ms", "statuses"}``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter

import aiohttp
import orjson

PLACED = orjson.dumps(
    {"type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 2, "price": 3.5}]}}
)
PAID = orjson.dumps({"type": "OrderPaid", "data": {"amount": 7}})


async def main(url: str, clients: int, count: int, run: str, kind: str) -> None:
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(i: int, body: bytes) -> int:
            async with session.post(f"{url}/v1/order/{run}-{i}/events", data=body) as response:
                await response.read()
                return response.status

        async def drive(body: bytes, latencies: list[float], statuses: Counter[int]) -> float:
            indexes = iter(range(count))

            async def client() -> None:
                for i in indexes:
                    started = time.perf_counter()
                    statuses[await post(i, body)] += 1
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            return time.perf_counter() - started

        if kind == "paid":
            await drive(PLACED, [], Counter())  # setup: the orders exist and are marked
        print(orjson.dumps({"setup": True}).decode(), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        seconds = await drive(PAID if kind == "paid" else PLACED, latencies, statuses)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    result = {
        "count": count,
        "seconds": seconds,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "statuses": {str(k): v for k, v in statuses.items()},
    }
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    url, clients, count, run, kind = sys.argv[1:]
    asyncio.run(main(url, int(clients), int(count), run, kind))
