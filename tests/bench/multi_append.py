"""What one transaction across N aggregates costs beside N single sync appends, on the embedded
stack (``python -m tests.bench.multi_append [ROUNDS] [REQUESTS]``, default 5 40).

Sync mode as the fleet wires it (``tests.sync.wiring``: a commands-role runtime, SecantusDB as
its own process, Tansu, Redis), no HTTP. Per size N (2, 5, 10), interleaved and alternating
which goes first: REQUESTS times N single ``SyncCommands.append`` calls one after the other
(each its own load, insert and produce), against REQUESTS ``append_many`` calls of N items
(N loads at once, one transaction, one produce). Printed per event: the wall time, this
process's CPU and the store's (its process, from /proc), median of the rounds, and the ratio
of the transaction's to the singles'. SecantusDB is a surrogate (2-27x slower than mongod):
read the ratios, not the absolute times.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from tests.bench import run_script
from tests.kafka_topics import create_topic
from tests.sync.wiring import sync_wiring
from topics.envelope import Metadata
from workers.cqrs.sync import SyncCommands
from workers.devtools.bench.measure import cpu_seconds, load_average
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains.account import ACCOUNT
from workers.ports import AppendItem

SIZES = (2, 5, 10)
Sample = tuple[float, float, float]
"""Per event: wall ms, this process's CPU ms, the store's CPU ms."""


async def main(rounds: int, requests: int) -> None:
    async with EmbeddedStack() as stack:
        store = stack.process("mongo")
        assert store.pid is not None
        name = f"bench_multi_{uuid.uuid4().hex[:6]}"
        async with sync_wiring(kafka_url=stack.urls.kafka_url, mongo_url=stack.urls.mongo_url,
                               redis_url=stack.urls.redis_url, name=name) as wired:  # fmt: skip
            await create_topic(stack.urls.kafka_url, wired.topic, partitions=4)
            print(load_average())
            for size in SIZES:
                await compare(wired.sync, store.pid, size, rounds, requests)


async def compare(
    sync: SyncCommands, store_pid: int, size: int, rounds: int, requests: int
) -> None:
    meta = Metadata(client_id="bench")

    def accounts() -> list[str]:
        return [f"b-{uuid.uuid4().hex[:10]}" for _ in range(size)]

    async def singles() -> None:
        for account in accounts():
            await sync.append(ACCOUNT, account, "AccountOpened", {"owner": "b"}, meta)

    async def together() -> None:
        items = [AppendItem(ACCOUNT, a, "AccountOpened", {"owner": "b"}) for a in accounts()]
        await sync.append_many(items, meta)

    ways: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("singles", singles), ("transaction", together),
    ]  # fmt: skip
    samples: dict[str, list[Sample]] = {name: [] for name, _ in ways}
    await singles()  # warm: connections, the domain's first load
    await together()
    for r in range(rounds):
        for name, way in ways if r % 2 == 0 else ways[::-1]:
            c0, s0, t0 = time.process_time(), cpu_seconds(store_pid), time.perf_counter()
            for _ in range(requests):
                await way()
            c1, s1, t1 = time.process_time(), cpu_seconds(store_pid), time.perf_counter()
            per = 1000 / (requests * size)
            samples[name].append(((t1 - t0) * per, (c1 - c0) * per, (s1 - s0) * per))
    medians = {name: tuple(statistics.median(s[i] for s in rows) for i in range(3))
               for name, rows in samples.items()}  # fmt: skip
    single, many = medians["singles"], medians["transaction"]
    for name, (wall, cpu, store) in medians.items():
        print(f"N={size:2d} {name:11s} per event: wall {wall:.2f} ms, client CPU {cpu:.2f} ms, "
              f"store CPU {store:.2f} ms")  # fmt: skip
    print(f"N={size:2d} transaction / singles: wall {many[0] / single[0]:.2f}x, client CPU "
          f"{many[1] / single[1]:.2f}x, store CPU {many[2] / single[2]:.2f}x "
          f"({rounds} rounds of {requests} requests)")  # fmt: skip


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] + [5, 40][len(sys.argv) - 1 :]
    run_script(main(*args[:2]))
