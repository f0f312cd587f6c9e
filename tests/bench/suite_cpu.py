"""Where the suite's CPU goes: pytest as the test command runs it, with every process on the
machine read from ``/proc`` twice a second, and their CPU summed by kind.

``python -m tests.bench.suite_cpu [PYTEST ARGS]`` (default: the whole suite, with the test
command's workers, ``tests/__main__.py``) prints, after pytest's own output, the wall time, the CPU
of the run (every process's user + system time over it: those alive before it count only
what they spent during it) and, per kind of process (a fleet worker by role, an
``eventfleet`` one-shot by command, the broker, the store, the browser, ...), its CPU seconds,
its share and how many processes it had.

A process is read every 0.5 s, so what one spends after its last reading (and a process
that lives less than 0.5 s) is missed: the sum is a little under the truth. The suite aims at
10 minutes on 2 cores, that is at most 1,200 CPU seconds with both cores busy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.__main__ import parallel
from tests.launcher import LAUNCHED
from workers.devtools.bench.measure import TICKS_PER_S, load_average

INTERVAL_S = 0.5
TESTS_OWN = "pytest and its workers (the tests' own code)"


@dataclass(slots=True)
class Seen:
    kind: str
    first: float
    last: float


def kind_of(argv: list[str]) -> str:
    """What a process is, from its command line."""
    if not argv:
        return "other"
    head = Path(argv[0]).name
    if "workers.cli" in argv:
        rest = argv[argv.index("workers.cli") + 1 :]
        if rest[:1] == ["worker"]:
            role = rest[rest.index("--role") + 1] if "--role" in rest[:-1] else "all"
            return f"fleet worker --role {role}"
        return f"eventfleet {rest[0]}" if rest else "eventfleet"
    joined = " ".join(argv[:3])
    for needle, kind in (
        ("tansu", "Tansu (the Kafka broker)"),
        ("secantus", "SecantusDB (the MongoDB store)"),
        ("redis-server", "Redis"),
        ("nats-server", "NATS"),
        ("chrom", "chromium and chromedriver (the console's browser tests)"),
        ("stress-ng", "stress-ng (the scenarios run with both cores busy)"),
        ("wrk", "wrk"),
        ("pytest", TESTS_OWN),
    ):
        if needle in joined:
            return kind
    if head.startswith("python") and argv[1:2] in (["-c"], ["-u"]):
        return TESTS_OWN  # execnet's workers
    if head.startswith("python") and argv[1:2] == ["-m"] and len(argv) > 2:
        return f"python -m {argv[2]}"
    return head


def command_line(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if argv[1:3] == ["-m", "tests.launcher"]:  # a fleet worker it forked is named by its role
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        if name.startswith(LAUNCHED):
            return ["python", "-m", "workers.cli", "worker", "--role", name.removeprefix(LAUNCHED)]
    return argv


def read_all(seen: dict[tuple[int, int], Seen], *, started: bool) -> None:
    """Every process's CPU now, by pid and start time (a pid is reused within one run: this
    machine's ``pid_max`` is 32,768, and threads draw from it too); one first read here started before the run when ``started`` is False
    (only what it spends from now on counts)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            key, cpu = (pid, int(fields[19])), (int(fields[11]) + int(fields[12])) / TICKS_PER_S
            if key in seen:
                seen[key].last = cpu
            else:
                seen[key] = Seen(kind_of(command_line(pid)), cpu if not started else 0.0, cpu)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # ended between the listing and the read


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("pytest_args", nargs="*", help="pytest's own, as given (-n 4, a path, ...)")
    pytest_args = sys.argv[1:]  # pytest's, untouched: argparse would take "-n 4" for its own
    if pytest_args[:1] in (["-h"], ["--help"]):
        cli.parse_args(pytest_args)  # prints the help and exits
    seen: dict[tuple[int, int], Seen] = {}
    read_all(seen, started=False)
    me = os.getpid()
    argv = ["-q", "-p", "no:cacheprovider", *parallel(pytest_args), *pytest_args]
    print(f"{load_average()} at the start; pytest {' '.join(argv)}", flush=True)
    begun = time.monotonic()
    run = subprocess.Popen([sys.executable, "-m", "pytest", *argv])
    while run.poll() is None:
        read_all(seen, started=True)
        time.sleep(INTERVAL_S)  # the sampling period itself, not a wait for a condition
    wall = time.monotonic() - begun
    by_kind: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for (pid, _), s in seen.items():
        spent = s.last - s.first
        if pid != me and spent > 0:
            by_kind[s.kind] += spent
            count[s.kind] += 1
    total = sum(by_kind.values())
    print(f"wall {wall:.0f} s; CPU {total:.0f} s ({total / wall:.2f} cores busy on average)")
    for kind, spent in by_kind.most_common():
        if spent >= 0.005 * total:
            print(f"  {spent:7.1f} s  {100 * spent / total:4.1f}%  {count[kind]:4d}  {kind}")
    rest = [k for k, s in by_kind.items() if s < 0.005 * total]
    if rest:
        spent = sum(by_kind[k] for k in rest)
        print(f"  {spent:7.1f} s  {100 * spent / total:4.1f}%        {len(rest)} kinds under 0.5%")
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
