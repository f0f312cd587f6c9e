"""What a worker process's start costs: its CPU from exec to ready, and to its exit after a
SIGTERM, against a baseline checkout measured in the same run.

``python -m tests.bench.worker_start [--base REV] [--runs 10] [--role commands]``

One embedded stack; ``--runs`` starts of ``python -m workers.cli worker --role ROLE`` with the
tests' settings, alternating this checkout and ``REV`` (default ``HEAD``, exported to a
temporary folder, its bytecode compiled as this checkout's is). A start is ready when its
``/readyz`` answers 200; its CPU (user + system) then is read from ``/proc``, and after the
SIGTERM its whole life's from ``wait4``. Prints the median of each and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.bench import ROOT, archived, run_script
from tests.fleet import FleetProcess
from workers.devtools.bench.measure import cpu_seconds
from workers.devtools.embedded import EmbeddedStack

PACKAGES = ("topics", "snapshot_rules", "workers")


def export(rev: str, into: Path) -> Path:
    """The packages of ``rev``, written below ``into`` and compiled."""
    compiled(archived(rev, PACKAGES, into))
    return into


def compiled(root: Path) -> None:
    packages = [str(root / name) for name in PACKAGES]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *packages], check=True)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def one_start(root: Path, env: dict[str, str], role: str, url: str) -> tuple[float, float]:
    """(CPU to ready, CPU of the whole life) of one worker run from ``root``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", "--role", role],
        cwd=root,
        env={**os.environ, **env, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the worker from {root} did not get ready (exit {process.poll()})")
        time.sleep(0.05)  # the bench's own poll, outside the measured process
    to_ready = cpu_seconds(process.pid)
    process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the worker from {root} exited with {status} after its SIGTERM")
    process.returncode = os.waitstatus_to_exitcode(status)
    return to_ready, usage.ru_utime + usage.ru_stime


async def main(base: str, runs: int, role: str) -> None:
    compiled(ROOT)
    async with EmbeddedStack() as stack:
        with tempfile.TemporaryDirectory(prefix="worker-start-") as folder:
            roots = {"this checkout": ROOT, f"base {base}": export(base, Path(folder))}
            measured: dict[str, list[tuple[float, float]]] = {name: [] for name in roots}
            for run in range(runs):
                for name, root in roots.items():
                    fleet = FleetProcess.for_stack(stack, f"start_{uuid.uuid4().hex[:8]}")
                    sample = await asyncio.to_thread(one_start, root, fleet.env, role, fleet.url)
                    measured[name].append(sample)
                print(f"run {run + 1} of {runs}", file=sys.stderr, flush=True)
    medians = {
        name: (statistics.median(r for r, _ in samples), statistics.median(w for _, w in samples))
        for name, samples in measured.items()
    }
    print(f"worker --role {role}, {runs} starts each, median CPU (user + system):")
    for name, (to_ready, whole) in medians.items():
        print(f"  {name:<24} exec to ready {to_ready:.3f} s   whole life {whole:.3f} s")
    (now_ready, now_whole), (base_ready, base_whole) = medians.values()
    ratios = (
        f"exec to ready {now_ready / base_ready:.2f}x   whole life {now_whole / base_whole:.2f}x"
    )
    print(f"  {'ratio (this / base)':<24} {ratios}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the baseline revision (default: HEAD)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--role", default="commands")
    options = parser.parse_args()
    run_script(main(options.base, options.runs, options.role))
