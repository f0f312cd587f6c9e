"""Time travel on a long history: ``at_version``/``as_of`` with the snapshot ladder vs a replay
from the start, in one run (``python -m tests.bench.ladder [EVENTS] [STEP]``), on the memory
adapters so the store's speed does not hide the replay's length."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import timedelta

from tests.roles.support import COUNTER, T0, added
from workers.adapters.memory import MemoryEventStore, MemorySnapshotLadder, MemorySnapshotStore
from workers.metrics import create_metrics
from workers.roles.state import StateLoader


async def main(n: int, step: int) -> None:
    events = MemoryEventStore()
    for start in range(1, n + 1, 10_000):
        await events.append(added("c1", range(start, min(start + 10_000, n + 1))))
    metrics = create_metrics()
    ladder = StateLoader(events, MemorySnapshotStore(), metrics, ladder=MemorySnapshotLadder(),
                         ladder_step=step)  # fmt: skip
    plain = StateLoader(events, MemorySnapshotStore(), create_metrics(), ladder_step=0)
    for v in range(100, n + 1, 100):  # what the snapshot rule every(100) takes
        await ladder.save(COUNTER, "c1", await ladder.at(COUNTER, "c1", version=v), trigger="rule")
    points = random.Random(7).sample(range(1, n + 1), 20)
    rows = []
    for name, loader in (("ladder", ladder), ("from the start", plain), ("ladder", ladder)):
        started = time.perf_counter()
        replayed = 0
        for v in points:
            before = _replayed(loader)
            assert (await loader.at(COUNTER, "c1", version=v)).version == v
            replayed = max(replayed, _replayed(loader) - before)
        moment = T0 + timedelta(seconds=points[0])
        await loader.at(COUNTER, "c1", as_of=moment)
        rows.append((name, (time.perf_counter() - started) / (len(points) + 1) * 1000, replayed))
    print(f"state at a past version of a {n}-event aggregate (ladder step {step}, snapshots every"
          " 100): mean ms per query over 21 points, and the most events one query replayed")  # fmt: skip
    for name, ms, replayed in rows:
        print(f"  {name:<16}{ms:>10.2f} ms{replayed:>10} events")
    print(f"  ratio from-the-start / ladder: {rows[1][1] / rows[2][1]:.0f}x")


def _replayed(loader: StateLoader) -> int:
    """Events replayed so far, from the replay-length histogram's sum."""
    sample = loader._metrics.replay_length.labels("counter")._sum.get()
    return int(sample)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 1000))  # fmt: skip
