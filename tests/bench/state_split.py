"""Where the state query's cost lies: the query, its snapshot read and its event read, each
beside the bare fetch + fold that ``eventfleet bench state`` compares it with.

``python -m tests.bench.state_split [--rounds 5] [--rooms 200] [--length 50]``

One embedded stack; the rooms are written as ``bench state`` writes them (no snapshot). Every
round runs each side over every room, in an order reversed each round; printed per side: the
median round's CPU per query of this process and of the store's process (``/proc``, counted in
clock ticks: over 200 rooms, a step of 50 µs per query).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from pymongo import ASCENDING

from workers.adapters.mongo import MongoStores
from workers.adapters.records import document_to_event
from workers.devtools.bench.append import chains
from workers.devtools.bench.measure import cpu_seconds
from workers.devtools.dev import dev_settings, embedded_stack, run_directory
from workers.devtools.dev_keys import dev_master_key
from workers.devtools.embedded import free_port
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings


async def main(rounds: int, rooms: int, length: int) -> None:
    run = uuid.uuid4().hex[:6]
    settings = dev_settings(Settings.from_env(), port=free_port()).with_defaults(
        topic_prefix=f"split-{run}.", mongo_database=f"split_{run}", group_id=f"split-{run}"
    )
    async with run_directory() as directory:
        settings = dev_master_key(directory, settings)
        stack = embedded_stack(settings)
        urls = await stack.start()
        try:
            settings = settings.with_defaults(
                kafka_url=urls.kafka_url, mongo_url=urls.mongo_url, redis_url=urls.redis_url,
                kafka_idempotence=False, mongo_timeout_ms=30_000,
            )  # fmt: skip
            runtime = await Runtime.start(settings, roles=())
            try:
                await _measure(runtime, stack.process("mongo").pid, rounds, rooms, length, run)
            finally:
                await runtime.stop()
        finally:
            await stack.stop()


async def _measure(
    runtime: Runtime, store_pid: int, rounds: int, rooms: int, length: int, run: str
) -> None:
    versions: dict[str, int] = {}
    numbered = []
    for event in chains(rooms * length, rooms, run):
        versions[event.aggregate_id] = versions.get(event.aggregate_id, 0) + 1
        numbered.append(event.with_version(versions[event.aggregate_id]))
    for i in range(0, len(numbered), 1000):
        await runtime.events.append(numbered[i : i + 1000])
    ids = sorted(versions)
    settings = runtime.settings
    bare_store = MongoStores(settings.mongo_url, settings.mongo_database, timeout_ms=30_000)
    collection = bare_store.events.collection
    chat_room = runtime.domains.get("chat_room")
    loader = runtime.loader

    async def bare() -> None:
        for room in ids:
            query = {"aggregate_type": "chat_room", "aggregate_id": room}
            state = None
            async for doc in collection.find(query, sort=[("version", ASCENDING)]):
                state = chat_room.reducer(state, document_to_event(doc))

    async def query() -> None:
        for room in ids:
            await loader.latest(chat_room, room, save=False)

    async def snapshot_read() -> None:
        for room in ids:
            await loader.snapshots.load(("chat_room", room))

    async def event_read() -> None:
        for room in ids:
            await loader.events.select(("chat_room", room), after=0)

    sides: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("bare fetch + fold", bare),
        ("state query", query),
        ("its snapshot read", snapshot_read),
        ("its event read", event_read),
    ]
    per_query: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in sides}
    try:
        for _, work in sides:  # warm: the first pass pays for the store's cache
            await work()
        for r in range(rounds):
            for name, work in sides if r % 2 == 0 else sides[::-1]:
                ours, store = time.process_time(), cpu_seconds(store_pid)
                await work()
                per_query[name].append(
                    (
                        (time.process_time() - ours) / len(ids) * 1e6,
                        (cpu_seconds(store_pid) - store) / len(ids) * 1e6,
                    )
                )
    finally:
        await bare_store.close()
    print(f"{len(ids)} rooms of {length} events, no snapshot; {rounds} rounds; CPU per query")
    base = statistics.median(a + b for a, b in per_query["bare fetch + fold"])
    for name, measured in per_query.items():
        here = statistics.median(a for a, _ in measured)
        there = statistics.median(b for _, b in measured)
        total = statistics.median(a + b for a, b in measured)
        print(f"  {name:<20} {here:7.0f} µs here {there:7.0f} µs in the store "
              f"{total:7.0f} µs  {total / base:5.2f}x the bare fold")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--length", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.rooms, args.length))
