"""What an idle fleet process costs, and what it costs its broker, at each fetch wait.

``python -m tests.bench.idle_fleet [--roles all] [--seconds 20] [--settle 5] WAIT_MS [WAIT_MS ...]``

One embedded stack; per WAIT_MS in turn, one fleet process (``--roles``, the tests' settings
but ``EVENTFLEET_KAFKA_FETCH_MAX_WAIT_MS``) is started, left alone for ``--settle`` seconds,
then its CPU, the broker's (Tansu) and the store's (SecantusDB) are read from ``/proc`` over
``--seconds``, in % of one core; the broker alone (no fleet yet) is the first row. On Tansu a
long poll is answered only at its end, so an idle consumer fetches once per wait: the wait is
both each hop's latency and the rate of an idle process's fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from tests.bench import run_script
from tests.fleet import FleetProcess
from workers.devtools.bench.measure import cpu_seconds, load_average
from workers.devtools.embedded import EmbeddedStack


async def idle_share(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU over ``seconds``, in % of one core."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(seconds)  # the measured window itself, not a wait for a condition
    return {name: 100 * (cpu_seconds(pid) - before[name]) / seconds for name, pid in pids.items()}


def _pid(stack: EmbeddedStack, name: str) -> int:
    pid = stack.process(name).pid
    assert pid is not None, f"{name} is not running"
    return pid


async def main(roles: str, waits: list[int], seconds: float, settle: float) -> None:
    stack = EmbeddedStack()
    await stack.start()
    try:
        services = {name: _pid(stack, name) for name in ("kafka", "mongo")}
        print(f"idle CPU, % of one core, over {seconds:g} s ({load_average()})")
        print(f"{'fleet':<28}{'fleet':>8}{'broker':>9}{'store':>8}{'sum':>8}")
        alone = await idle_share(services, seconds)
        print(
            f"{'none (the broker alone)':<28}{'':>8}{alone['kafka']:>8.1f}%{alone['mongo']:>7.1f}%"
        )
        for wait in waits:
            fleet = FleetProcess.for_stack(
                stack, f"idle_{uuid.uuid4().hex[:6]}", roles=roles,
                EVENTFLEET_KAFKA_FETCH_MAX_WAIT_MS=str(wait),
            )  # fmt: skip
            await fleet.start()
            try:
                assert fleet.process is not None
                await asyncio.sleep(settle)  # past its start-up work, into its idle rhythm
                shares = await idle_share({**services, "fleet": fleet.process.pid}, seconds)
            finally:
                await fleet.stop()
            total = shares["fleet"] + shares["kafka"] + shares["mongo"]
            print(
                f"{f'{roles}, fetch wait {wait} ms':<28}{shares['fleet']:>7.1f}%"
                f"{shares['kafka']:>8.1f}%{shares['mongo']:>7.1f}%{total:>7.1f}%"
            )
    finally:
        await stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roles", default="all")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("waits", nargs="+", type=int, metavar="WAIT_MS")
    a = parser.parse_args()
    run_script(main(a.roles, a.waits, a.seconds, a.settle))
