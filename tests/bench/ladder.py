"""Time travel on a long history: ``at_version``/``as_of`` with the snapshot ladder vs a replay
from the start, in one run (``python -m tests.bench.ladder [EVENTS] [STEP] [--mongo]``), on the memory
adapters, or on MongoDB (the embedded SecantusDB) with ``--mongo``."""

from __future__ import annotations

import random
import sys
import time
from datetime import timedelta
from typing import Any

from tests.bench import run_script
from tests.roles.support import COUNTER, T0, added
from workers.adapters.memory import MemoryEventStore, MemorySnapshotLadder, MemorySnapshotStore
from workers.metrics import create_metrics
from workers.roles.state import StateLoader


async def main(n: int, step: int, *, mongo: bool) -> None:
    if not mongo:
        await compare(MemoryEventStore(), MemorySnapshotLadder(), n, step, points=20)
        return
    from workers.adapters.mongo import MongoStores
    from workers.devtools.embedded import EmbeddedStack

    stack = EmbeddedStack(kafka_url="kafka://127.0.0.1:1", mongo_url=None,
                          redis_url="redis://127.0.0.1:1", start_redis=False)  # fmt: skip
    urls = await stack.start()
    stores = MongoStores(urls.mongo_url, "ladder_bench", timeout_ms=120_000)
    try:
        await stores.open()
        await compare(stores.events, stores.ladder, n, step, points=5)
    finally:
        await stores.client.drop_database("ladder_bench")
        await stores.close()
        await stack.stop()


async def compare(events: Any, rungs: Any, n: int, step: int, *, points: int) -> None:
    print(f"storing {n} events ...", file=sys.stderr, flush=True)
    for start in range(1, n + 1, 1000):
        await events.append(added("c1", range(start, min(start + 1000, n + 1))))
    metrics = create_metrics()
    ladder = StateLoader(events, MemorySnapshotStore(), metrics, ladder=rungs, ladder_step=step)
    plain = StateLoader(events, MemorySnapshotStore(), create_metrics(), ladder_step=0)
    print("taking the snapshots every 100 ...", file=sys.stderr, flush=True)
    for v in range(100, n + 1, 100):  # what the snapshot rule every(100) takes
        await ladder.save(COUNTER, "c1", await ladder.at(COUNTER, "c1", version=v), trigger="rule")
    chosen = random.Random(7).sample(range(1, n + 1), points)
    kept = await rungs.versions(("counter", "c1"))
    print(f"rungs kept: {len(kept)} (evenly spaced: {n // step}); nearest the head "
          f"{kept[-4:]}, furthest back {kept[:3]}")  # fmt: skip
    worst = 0.0
    for v in chosen:  # events one query replays, against its distance from the head
        before = _replayed(ladder)
        await ladder.at(COUNTER, "c1", version=v)
        worst = max(worst, (_replayed(ladder) - before) / max(step, n - v))
    print(f"most events replayed per version of distance from the head: {worst:.2f}")
    rows = []
    for name, loader in (("ladder", ladder), ("from the start", plain), ("ladder", ladder)):
        started = time.perf_counter()
        replayed = 0
        for v in chosen:
            before = _replayed(loader)
            assert (await loader.at(COUNTER, "c1", version=v)).version == v
            replayed = max(replayed, _replayed(loader) - before)
        moment = T0 + timedelta(seconds=chosen[0])
        await loader.at(COUNTER, "c1", as_of=moment)
        rows.append((name, (time.perf_counter() - started) / (points + 1) * 1000, replayed))
    print(f"state at a past version of a {n}-event aggregate (ladder step {step}, snapshots every"
          f" 100, {type(events).__name__}): mean ms per query over {points + 1} points (one by"
          " as_of), and the most events one query replayed")  # fmt: skip
    for name, ms, replayed in rows:
        print(f"  {name:<16}{ms:>10.2f} ms{replayed:>10} events")
    print(f"  ratio from-the-start / ladder: {rows[1][1] / rows[2][1]:.0f}x")


def _replayed(loader: StateLoader) -> int:
    """Events replayed so far, from the replay-length histogram's sum."""
    sample = loader._metrics.replay_length.labels("counter")._sum.get()
    return int(sample)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--mongo"]
    run_script(main(int(args[0]) if args else 100_000, int(args[1]) if len(args) > 1 else 1000,
                     mongo="--mongo" in sys.argv))  # fmt: skip
