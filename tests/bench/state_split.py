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
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from tests.bench import run_script
from workers.adapters.mongo import MongoStores
from workers.devtools.bench.measure import cpu_seconds
from workers.devtools.bench.stack import bench_settings, bench_stack
from workers.devtools.bench.state import bare_fold, written_rooms
from workers.runtime.settings import Settings


async def main(rounds: int, rooms: int, length: int) -> None:
    settings = bench_settings(Settings.from_env(), uuid.uuid4().hex[:6], prefix="split")
    async with bench_stack(settings) as bench:
        runtime = bench.runtime
        store_pid = bench.stack.process("mongo").pid
        ids = await written_rooms(runtime, rooms, length)
        bare_store = MongoStores(
            bench.settings.mongo_url, bench.settings.mongo_database, timeout_ms=30_000
        )
        chat_room = runtime.domains.get("chat_room")
        loader = runtime.loader

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
            ("bare fetch + fold", bare_fold(bare_store, chat_room, ids)),
            ("state query", query),
            ("its snapshot read", snapshot_read),
            ("its event read", event_read),
        ]
        try:
            per_query = await _rounds(sides, rounds, store_pid, len(ids))
        finally:
            await bare_store.close()
    report(per_query, len(ids), length, rounds)


async def _rounds(
    sides: list[tuple[str, Callable[[], Awaitable[None]]]], rounds: int, store_pid: int, rooms: int
) -> dict[str, list[tuple[float, float]]]:
    """Each side's CPU per query (here, in the store) in every round, sides reversed each round."""
    per_query: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in sides}
    for _, work in sides:  # warm: the first pass pays for the store's cache
        await work()
    for r in range(rounds):
        for name, work in sides if r % 2 == 0 else sides[::-1]:
            ours, store = time.process_time(), cpu_seconds(store_pid)
            await work()
            here = (time.process_time() - ours) / rooms * 1e6
            per_query[name].append((here, (cpu_seconds(store_pid) - store) / rooms * 1e6))
    return per_query


def report(
    per_query: dict[str, list[tuple[float, float]]], rooms: int, length: int, rounds: int
) -> None:
    print(f"{rooms} rooms of {length} events, no snapshot; {rounds} rounds; CPU per query")
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
    run_script(main(args.rounds, args.rooms, args.length))
