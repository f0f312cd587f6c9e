"""What a retry policy costs a call that succeeds at once: a stamina run of ``Backoff.tries``
against ``Backoff.call``, whose first try is made before stamina is asked.

``python -m tests.bench.retry_cost [--calls N]`` prints the CPU per call of each and their
ratio (the second of two passes, measured in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from topics.errors import Unavailable
from workers.roles.retry import DEPENDENCY_PAUSES


async def _work(_: int = 1) -> int:
    return 1


async def measure(calls: int) -> tuple[float, float]:
    """CPU microseconds per call: (a stamina run, the first try outside it)."""
    policy = DEPENDENCY_PAUSES
    ran = outside = 0.0
    for _ in range(2):  # the first pass warms both up
        started = time.process_time()
        for _ in range(calls):
            async for attempt in policy.tries(Unavailable):
                with attempt:
                    await _work()
        ran = (time.process_time() - started) / calls * 1e6
        started = time.process_time()
        for _ in range(calls):
            await policy.call(_work, Unavailable)
        outside = (time.process_time() - started) / calls * 1e6
    return ran, outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    ran, outside = asyncio.run(measure(args.calls))
    print(f"a stamina run: {ran:.1f} us of CPU a call; the first try outside it: {outside:.2f} us")
    print(f"ratio (outside / run): {outside / ran:.3f}")


if __name__ == "__main__":
    main()
