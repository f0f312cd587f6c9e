"""Scale-out onto a backlog: four appender processes join an 8-partition group holding
``EVENTS`` events (default 20,000), ``RUNS`` times (default 5), each on a stack of its own; prints
the seconds from launch to ready and to the first published event, p50 and max over every
process of every run (``python -m tests.bench.elasticity [EVENTS] [RUNS]``)."""

from __future__ import annotations

import statistics
import sys
import uuid

from tests.bench import run_script
from tests.e2e.scaling import join_a_backlog
from workers.devtools.embedded import EmbeddedStack


async def main(events: int, runs: int) -> None:
    ready: list[float] = []
    first: list[float] = []
    for run in range(runs):
        async with EmbeddedStack(start_redis=True) as stack:
            r, f = await join_a_backlog(stack, f"elastic_{uuid.uuid4().hex[:8]}", events)
        ready += r
        first += f
        print(f"run {run + 1}: ready {max(r):.1f} s, first event {min(f):.1f}..{max(f):.1f} s",
              flush=True)  # fmt: skip
    print(
        f"{runs} runs of 4 appenders joining {events} events on 8 partitions: ready p50 "
        f"{statistics.median(ready):.1f} s max {max(ready):.1f} s; first event p50 "
        f"{statistics.median(first):.1f} s max {max(first):.1f} s"
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    run_script(main(*(args + [20_000, 5][len(args) :])))
