"""Load generator for ``eventfleet bench commands``: HTTP appends from its own process.

Usage: python -m workers.devtools.bench_client URL CLIENTS COUNT RUN. Prints one JSON line:
{"count", "seconds", "p50_ms", "p99_ms", "statuses"}.
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


async def main(url: str, clients: int, count: int, run: str) -> None:
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

        await drive(PLACED, [], Counter())  # setup: the orders exist and are marked
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        seconds = await drive(PAID, latencies, statuses)
    cuts = statistics.quantiles(latencies, n=100)
    print(
        orjson.dumps(
            {
                "count": count,
                "seconds": seconds,
                "p50_ms": cuts[49] * 1000,
                "p99_ms": cuts[98] * 1000,
                "statuses": {str(k): v for k, v in statuses.items()},
            }
        ).decode()
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
