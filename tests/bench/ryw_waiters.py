"""Unrelated requests' latency with 1,000 read-your-writes waiters that can never be satisfied,
against a baseline with none, in one run on the embedded stack.

``python -m tests.bench.ryw_waiters [--waiters 1000] [--seconds 8] [--code DIR]``

One fleet process (every role, ``EVENTFLEET_AUTH=jwt``); wrk (``/usr/bin/wrk``) reads one
stored order's ``/state`` over 4 connections: first with no waiter (the baseline), then while
``--waiters`` reads wait for version 1 of orders that are never written (``wait_ms=30000``,
each its own order, spread over 10 principals), then once more after they were answered.
Printed: p50/p99 of each phase, the ratio of the loaded p99 to the baseline's, how the waiters
were answered, and the store checks made for them (``eventfleet_ryw_store_checks_total``,
absent in code without it). ``--code DIR`` runs the fleet from another checkout (its
PYTHONPATH), e.g. the code before bounded waiters, to measure both with one script.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.bench import run_script
from tests.fleet import LIFECYCLE, FleetProcess
from tests.tokens import bearer
from workers.devtools.bench.wrk import wrk_path
from workers.devtools.embedded import EmbeddedStack

PRINCIPALS = 10
SCRIPT = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"count":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status":%d,"socket":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


async def read_load(fleet: FleetProcess, path: str, seconds: int) -> dict[str, float]:
    """wrk GETs ``path`` for ``seconds`` over 4 connections: its count and latencies."""
    with tempfile.TemporaryDirectory(prefix="eventfleet-wrk-") as tmp:
        script = Path(tmp, "done.lua")
        _write(script, SCRIPT)
        process = await asyncio.create_subprocess_exec(
            wrk_path(), "-t1", "-c4", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
            "-H", f"Authorization: Bearer {fleet.token()}", fleet.url + path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode().strip() or out!r}")
    result: dict[str, float] = orjson.loads(lines[-1])
    return result  # non-2xx answers and socket errors counted: the code before failed some


async def metric(fleet: FleetProcess, name: str) -> float | None:
    status, text = await fleet.get("/metrics")
    if status != 200:
        return None
    found = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith(name) and line[len(name)] in " {"]  # fmt: skip
    return sum(found) if found else None


async def open_waiters(
    fleet: FleetProcess, session: aiohttp.ClientSession, n: int, run: str
) -> list[asyncio.Task[int]]:
    tokens = [bearer(fleet.token(f"waiter-{p}")) for p in range(PRINCIPALS)]

    async def wait(i: int) -> int:
        url = f"{fleet.url}/v1/order/never-{run}-{i}/state?min_version=1&wait_ms=30000"
        async with session.get(url, headers=tokens[i % PRINCIPALS]) as r:
            await r.read()
            return r.status

    return [asyncio.create_task(wait(i)) for i in range(n)]


def fleet_cpu(fleet: FleetProcess) -> float:
    """The fleet process's CPU time so far, in seconds (user and system)."""
    assert fleet.process is not None
    with open(f"/proc/{fleet.process.pid}/stat") as f:  # a few bytes of procfs
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(waiters: int, seconds: int, code: str | None, settle_s: float, cycles: int) -> None:
    run = uuid.uuid4().hex[:8]
    async with EmbeddedStack() as stack:
        extra = {
            "EVENTFLEET_RYW_MAX_WAITERS": str(max(2000, waiters)),
            "EVENTFLEET_RYW_MAX_WAITERS_PER_PRINCIPAL": str(waiters),
            "EVENTFLEET_LOG_LEVEL": "warning",
        }
        if code is not None:  # `python -m` puts the working directory first on sys.path
            extra["PYTHONPATH"] = code
            os.chdir(code)
        fleet = FleetProcess.for_stack(stack, f"bench_ryw_{run}", **extra)
        await fleet.start()
        try:
            order = f"seen-{run}"
            for kind, data in LIFECYCLE:
                status, body = await fleet.post(f"/v1/order/{order}/events",
                                                {"type": kind, "data": data})  # fmt: skip
                assert status == 202, body
            path = f"/v1/order/{order}/state"
            status, body = await fleet.get(f"{path}?min_version=4&wait_ms=20000")
            assert status == 200, body
            await read_load(fleet, path, 2)  # warm up
            print(f"fleet code: {code or 'this checkout'}; {waiters} waiters (wait_ms=30000, "
                  f"never satisfied); wrk -t1 -c4 -d{seconds}s GET {path}", flush=True)  # fmt: skip
            phases: dict[str, list[dict[str, float]]] = {"none": [], "waiting": []}
            for cycle in range(1, cycles + 1):
                baseline, loaded, note = await one_cycle(fleet, path, waiters, seconds, settle_s,
                                                   f"{run}-{cycle}")  # fmt: skip
                phases["none"].append(baseline)
                phases["waiting"].append(loaded)
                print(f"cycle {cycle}:", flush=True)
                print("  " + show("no waiters", baseline))
                print("  " + show(f"{waiters} waiters", loaded) + f" [{note}]", flush=True)
        finally:
            await fleet.stop()
    p99 = {name: statistics.median(r["p99_us"] for r in found) for name, found in phases.items()}
    p50 = {name: statistics.median(r["p50_us"] for r in found) for name, found in phases.items()}
    print(f"median of {cycles} cycles: no waiters p50 {p50['none'] / 1000:.2f} ms p99 "
          f"{p99['none'] / 1000:.2f} ms; {waiters} waiters p50 {p50['waiting'] / 1000:.2f} ms "
          f"p99 {p99['waiting'] / 1000:.2f} ms; p99 ratio {p99['waiting'] / p99['none']:.2f}, "
          f"p50 ratio {p50['waiting'] / p50['none']:.2f}")  # fmt: skip


async def one_cycle(
    fleet: FleetProcess, path: str, waiters: int, seconds: int, settle_s: float, run: str
) -> tuple[dict[str, float], dict[str, float], str]:
    """A run with no waiter, then one with ``waiters`` waiting; then their answers."""
    cpu = fleet_cpu(fleet)
    baseline = await read_load(fleet, path, seconds)
    baseline["cpu_s"] = fleet_cpu(fleet) - cpu
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=90)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        opened = time.monotonic()
        tasks = await open_waiters(fleet, session, waiters, run)
        try:
            return await _loaded(fleet, path, waiters, seconds, settle_s, tasks, opened, baseline)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _loaded(
    fleet: FleetProcess,
    path: str,
    waiters: int,
    seconds: int,
    settle_s: float,
    tasks: list[asyncio.Task[int]],
    opened: float,
    baseline: dict[str, float],
) -> tuple[dict[str, float], dict[str, float], str]:
    """The run while the waiters wait; then their answers."""
    deadline = time.monotonic() + 15
    waiting = await metric(fleet, "eventfleet_ryw_waiters")
    while waiting is not None and waiting < waiters and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        waiting = await metric(fleet, "eventfleet_ryw_waiters")
    if waiting is None:  # code without the gauge: give the reads time to arrive
        await asyncio.sleep(3)
    ready_s = time.monotonic() - opened
    await asyncio.sleep(settle_s)  # their arrival's reads and subscriptions done
    checks = await metric(fleet, "eventfleet_ryw_store_checks_total")
    started, cpu = time.monotonic(), fleet_cpu(fleet)
    loaded = await read_load(fleet, path, seconds)
    loaded["cpu_s"] = fleet_cpu(fleet) - cpu
    checked = await metric(fleet, "eventfleet_ryw_store_checks_total")
    loaded_s = time.monotonic() - started
    answers = await asyncio.gather(*tasks, return_exceptions=True)  # 504 at 30 s
    statuses = collections.Counter(a if isinstance(a, int) else type(a).__name__ for a in answers)
    seen = "no gauge" if waiting is None else f"{int(waiting)} waiting"
    note = f"{seen} after {ready_s:.1f} s; answered {dict(statuses)}"
    if checks is not None and checked is not None:
        note += f"; store checks {(checked - checks) / loaded_s:.1f}/s"
    return baseline, loaded, note


def show(name: str, result: dict[str, float]) -> str:
    rate = result["count"] / (result["duration_us"] / 1e6)
    return (f"{name:<14} p50 {result['p50_us'] / 1000:7.2f} ms  p99 "
            f"{result['p99_us'] / 1000:7.2f} ms  ({int(result['count'])} requests, "
            f"{rate:.0f}/s, {int(result['status'])} non-2xx, {int(result['socket'])} socket "
            f"errors; the fleet's CPU {result['cpu_s']:.1f} s)")  # fmt: skip


def _write(path: Path, text: str) -> None:
    """A few hundred bytes to a fresh temporary file: nothing the loop waits on."""
    path.write_text(text)


def _args() -> Any:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiters", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds between the waiters' arrival and the loaded run",
    )
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--code", help="run the fleet from this checkout (its PYTHONPATH)")
    return parser.parse_args()


if __name__ == "__main__":
    args = _args()
    run_script(main(args.waiters, args.seconds, args.code, args.settle, args.cycles))
