"""The live feed's announcing cost: a pipeline of one ``PUBLISH`` per record (redis-py packing
and parsing each) against the feed's one script call per batch packed by hiredis, interleaved
(``python -m tests.bench.live_publish [REDIS_URL]``, default ``redis://127.0.0.1:6379``).

CPU per announcement is this process's time: what the storing process (the appender) pays.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from tests.bench import run_script
from workers.adapters.redis.live import _BATCH, _PUBLISH_ALL
from workers.adapters.redis.packing import fast_packing

ROUNDS, CALLS = 3, 40


async def main(url: str) -> None:
    plain, fast = Redis.from_url(url), Redis.from_url(url)
    fast.connection_pool.connection_class = fast_packing(fast.connection_pool.connection_class)
    await fast.script_load(_PUBLISH_ALL.source)
    batch = [(f"bench:{uuid.uuid4().hex}:a:order:{n}", b"x" * 600) for n in range(_BATCH)]

    async def pipelined() -> None:
        pipe = plain.pipeline(transaction=False)
        for channel, value in batch:
            pipe.publish(channel, value)
        await pipe.execute()

    async def scripted() -> None:
        await fast.evalsha(_PUBLISH_ALL.sha, 0, *[item for pair in batch for item in pair])

    ways: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("pipeline", pipelined),
        ("script", scripted),
    ]
    try:
        for round_ in range(ROUNDS):
            costs = {}
            for name, way in ways if round_ % 2 == 0 else ways[::-1]:
                started = time.process_time()
                for _ in range(CALLS):
                    await way()
                costs[name] = (time.process_time() - started) / (CALLS * _BATCH) * 1e6
            print(f"round {round_ + 1}: pipeline {costs['pipeline']:.2f} µs, script "
                  f"{costs['script']:.2f} µs per announcement "
                  f"({costs['script'] / costs['pipeline']:.2f} of it)")  # fmt: skip
    finally:
        await plain.aclose()
        await fast.aclose()


if __name__ == "__main__":
    run_script(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379"))
