"""Reading the heads of many aggregates: one ``find_one`` each (all in flight, as
``MongoEventStore.heads``) against one query per batch, interleaved, on the embedded store
(``python -m tests.bench.head_reads [EVENTS_PER_AGGREGATE] [AGGREGATES] [BATCH] [ROUNDS]``,
default 20 500 250 2).

Per aggregate: this process's CPU (what the appender pays), the store's CPU (its process, from
/proc) and the wall time. The batched forms are the two MongoDB documents for this: ``$in`` on
the second field of the ``(aggregate_type, aggregate_id, version)`` index, and ``$sort`` +
``$group`` with ``$first``; on a real mongod both walk the index, on SecantusDB they scan.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

from tests.bench import run_script
from workers.devtools.bench.measure import cpu_seconds
from workers.devtools.embedded import free_port
from workers.devtools.embedded.binaries import secantusd_argv, secantusd_bin

Refs = list[tuple[str, str]]


async def main(per: int, aggregates: int, batch: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        config = Path(workdir) / "secantusd.toml"
        config.touch()
        port = free_port()
        argv = secantusd_argv(secantusd_bin(), port, config=config, data=Path(workdir) / "data")
        store = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            await measure(store.pid, port, per, aggregates, batch, rounds)
        finally:
            store.terminate()
            await store.wait()


async def measure(pid: int, port: int, per: int, aggregates: int, batch: int, rounds: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=60_000
    )
    col = client["heads"]["events"]
    await col.create_index(
        [("aggregate_type", ASCENDING), ("aggregate_id", ASCENDING), ("version", ASCENDING)],
        unique=True,
    )
    docs = [
        {"_id": str(uuid.uuid4()), "aggregate_type": "chat_room", "aggregate_id": f"r{a}",
         "version": v, "type": "MessageSent", "data": {"text": "y" * 50}}
        for a in range(aggregates) for v in range(1, per + 1)
    ]  # fmt: skip
    for i in range(0, len(docs), 5000):
        await col.insert_many(docs[i : i + 5000], ordered=False)
    refs = [("chat_room", f"r{a}") for a in range(aggregates)]

    async def each(chunk: Refs) -> None:
        await asyncio.gather(*(
            col.find_one({"aggregate_type": t, "aggregate_id": i},
                         projection={"version": 1, "type": 1}, sort=[("version", DESCENDING)])
            for t, i in chunk
        ))  # fmt: skip

    async def in_query(chunk: Refs) -> None:
        query = {"aggregate_type": "chat_room", "aggregate_id": {"$in": [i for _, i in chunk]},
                 "version": 1}  # fmt: skip
        [d async for d in col.find(query, projection={"_id": 1, "aggregate_id": 1})]

    async def grouped(chunk: Refs) -> None:
        cursor = await col.aggregate([
            {"$match": {"aggregate_type": "chat_room", "aggregate_id": {"$in": [i for _, i in chunk]}}},
            {"$sort": {"aggregate_type": -1, "aggregate_id": -1, "version": -1}},
            {"$group": {"_id": "$aggregate_id", "version": {"$first": "$version"},
                        "event_id": {"$first": "$_id"}, "type": {"$first": "$type"}}},
        ])  # fmt: skip
        [d async for d in cursor]

    ways: list[tuple[str, Callable[[Refs], Awaitable[None]]]] = [
        ("find_one each", each),
        ("$in per batch", in_query),
        ("$group per batch", grouped),
    ]
    results: dict[str, list[tuple[float, float, float]]] = {}
    for r in range(rounds):
        for name, way in ways if r % 2 == 0 else ways[::-1]:
            c0, s0, t0 = time.process_time(), cpu_seconds(pid), time.perf_counter()
            for i in range(0, aggregates, batch):
                await way(refs[i : i + batch])
            c1, s1, t1 = time.process_time(), cpu_seconds(pid), time.perf_counter()
            ms = 1000 / aggregates
            results.setdefault(name, []).append(((c1 - c0) * ms, (s1 - s0) * ms, (t1 - t0) * ms))
    for name, rows in results.items():
        client_ms, store_ms, wall_ms = sorted(rows, key=lambda row: row[2])[len(rows) // 2]
        print(f"{name:18s} client {client_ms:.3f} ms, store {store_ms:.3f} ms, wall {wall_ms:.3f} "
              f"ms per aggregate ({aggregates} of {per} events, batches of {batch})")  # fmt: skip
    await client.close()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] + [20, 500, 250, 2][len(sys.argv) - 1 :]
    run_script(main(*args[:4]))
