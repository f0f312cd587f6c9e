"""How long a refusal waits when the aggregate has an event in flight: this checkout beside a
baseline revision, measured in the same run.

``python -m tests.bench.refusal_wait [--base REV] [--pairs 20] [--rounds 2] [--idle 5] [--split]``

A refusal is answered only once it is true (``workers.roles.command.refusals``): when the
aggregate's newest event is accepted but not yet stored, the door waits until the live feed
tells that the appender stored it, or until the appender's group has committed past every event
of the aggregate's partition. One embedded stack; per
round, per side in turn (alternating which goes first), one fleet process (``--role all``, the
tests' settings; with ``--split`` a commands process and an appender process, whose CPU counts
together) run from that side's packages (``REV``, default ``HEAD``, exported to a
temporary folder, as ``tests/bench/worker_start.py`` does) is sent ``--pairs`` pairs, one after
the other: an order placed (202), then at once its shipment, refused (409: not paid yet).
Prints, per side, the median and 90th percentile of the refusals' and the acceptances' answer
times, the fleet's CPU per pair, and its idle CPU over ``--idle`` seconds afterwards, in % of
one core; what decided the refusals (``eventfleet_refusal_checks_total``, where the side has it);
then the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from tests.bench import run_script
from tests.bench.worker_start import ROOT, compiled, export
from tests.fleet import FleetProcess, metric
from workers.devtools.bench.measure import cpu_seconds, load_average
from workers.devtools.bench.procs import server
from workers.devtools.embedded import EmbeddedStack
from workers.metrics import REFUSAL_DECISIONS

PLACED = {"type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 1, "price": 2.0}]}}
SHIPPED = {"type": "OrderShipped", "data": {"carrier": "dhl"}}


async def timed(fleet: FleetProcess, order: str, body: dict[str, object], want: int) -> float:
    started = time.perf_counter()
    status, answer = await fleet.post(f"/v1/order/{order}/events", body)
    took = time.perf_counter() - started
    assert status == want, f"{body['type']}: {status} {answer}"
    return took


async def measure(
    stack: EmbeddedStack, root: Path, pairs: int, idle_s: float, *, split: bool
) -> dict[str, list[float]]:
    name = f"refusal_{uuid.uuid4().hex[:6]}"
    roles = ("commands", "appender") if split else ("all",)
    fleets = [FleetProcess.for_stack(stack, name, roles=role) for role in roles]  # its settings
    async with contextlib.AsyncExitStack() as started:
        pids = []
        for each in reversed(fleets):  # the appender first: its group is joined when asked
            argv = ["workers.cli", "worker", "--role", each.roles]
            env = {**each.env, "PYTHONPATH": str(root)}
            running = await started.enter_async_context(
                server(str(root), argv, url=each.url, env=env, ready_path="/readyz", cwd=str(root))
            )
            pids.append(running.pid)
        fleet = fleets[0]  # the one that takes the requests
        # The first pair joins the groups and warms the paths: not measured.
        await timed(fleet, "warm", PLACED, 202)
        await timed(fleet, "warm", SHIPPED, 409)
        found: dict[str, list[float]] = defaultdict(list)
        decided_before = await decided(fleet)
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        for i in range(pairs):
            found["accepted"].append(await timed(fleet, f"o-{i}", PLACED, 202))
            found["refused"].append(await timed(fleet, f"o-{i}", SHIPPED, 409))
        found["cpu_per_pair"].append((sum(cpu_seconds(pid) for pid in pids) - cpu_before) / pairs)
        for how, count in (await decided(fleet)).items():
            found[f"decided {how}"].append(count - decided_before.get(how, 0))
        idle_before = sum(cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(idle_s)  # the measured idle window itself, not a wait for a condition
        idle = sum(cpu_seconds(pid) for pid in pids) - idle_before
        found["idle_share"].append(100 * idle / idle_s)
        return found


async def decided(fleet: FleetProcess) -> dict[str, float]:
    """The fleet's refusals by what decided them (``eventfleet_refusal_checks_total``; none on a
    revision without the metric)."""
    status, page = await fleet.get("/metrics")
    assert status == 200, page
    return {
        how: metric(page, "eventfleet_refusal_checks_total", decided=how)
        for how in REFUSAL_DECISIONS
        if f'decided="{how}"' in page
    }


def quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=10)[q - 1] if len(values) > 1 else values[0]


async def main(base: str, pairs: int, rounds: int, idle_s: float, split: bool) -> None:
    compiled(ROOT)
    async with EmbeddedStack() as stack:
        with tempfile.TemporaryDirectory(prefix="refusal-wait-") as folder:
            roots = {"this checkout": ROOT, f"base {base}": export(base, Path(folder))}
            results: dict[str, dict[str, list[float]]] = {n: defaultdict(list) for n in roots}
            print(f"{pairs} pairs per fleet, {rounds} rounds ({load_average()})", flush=True)
            for round_ in range(rounds):
                names = list(roots) if round_ % 2 == 0 else list(reversed(roots))
                for name in names:
                    found = await measure(stack, roots[name], pairs, idle_s, split=split)
                    for key, values in found.items():
                        results[name][key].extend(values)
    print(
        f"{'':<24}{'refused p50':>12}{'p90':>8}{'accepted p50':>14}{'p90':>8}"
        f"{'CPU/pair':>10}{'idle CPU':>10}"
    )
    medians = {}
    for name, r in results.items():
        medians[name] = (statistics.median(r["refused"]), statistics.median(r["cpu_per_pair"]))
        print(
            f"{name:<24}{1000 * statistics.median(r['refused']):>10.0f}ms"
            f"{1000 * quantile(r['refused'], 9):>6.0f}ms"
            f"{1000 * statistics.median(r['accepted']):>12.0f}ms"
            f"{1000 * quantile(r['accepted'], 9):>6.0f}ms"
            f"{1000 * statistics.median(r['cpu_per_pair']):>8.1f}ms"
            f"{statistics.median(r['idle_share']):>9.1f}%"
        )
    for name, r in results.items():
        counts = [f"{k.split()[1]} {sum(v):.0f}" for k, v in r.items() if k.startswith("decided")]
        if counts:
            print(f"{name}: refusals decided by {', '.join(counts)}")
    (now_refused, now_cpu), (base_refused, base_cpu) = medians.values()
    print(
        f"{'ratio (this / base)':<24}{now_refused / base_refused:>11.2f}x"
        f"{'':>30}{now_cpu / base_cpu:>9.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the baseline revision (default: HEAD)")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument(
        "--split", action="store_true", help="the commands and the appender in two processes"
    )
    a = parser.parse_args()
    run_script(main(a.base, a.pairs, a.rounds, a.idle, a.split))
