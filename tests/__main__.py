"""The whole test command: ruff (lint and format), mypy (strict), the docs and pytest; pytest's "no tests" counts as failure.

System tools the tests need (promtool, from Debian's prometheus package; chromium and
chromium-driver for the console's browser tests; wrk for the bench's HTTP rows) are installed first when missing and this
user may; otherwise one line says how, and the tests that need them fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NO_TESTS_COLLECTED = 5


def run(*argv: str) -> int:
    print(f"$ {' '.join(argv)}", flush=True)
    return subprocess.call([sys.executable, "-m", *argv])


SYSTEM_TOOLS = (
    # (command, Debian packages, the tests that need it)
    ("promtool", ("prometheus",), "the alert tests"),
    ("chromedriver", ("chromium", "chromium-driver"), "the console's browser tests"),
    ("wrk", ("wrk",), "the bench's HTTP rows (eventfleet bench commands)"),
    ("stress-ng", ("stress-ng",), "the fault scenarios run with both cores busy"),
)


def ensure_system_tools() -> None:
    """Install the system tools the tests need (promtool; chromium and its driver) when missing."""
    for command, packages, needed_by in SYSTEM_TOOLS:
        if not shutil.which(command):
            install(command, packages, needed_by)


def install(command: str, packages: tuple[str, ...], needed_by: str) -> None:
    names = " ".join(packages)
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        print(
            f"{command} is missing: run `apt-get install -y {names}` as root "
            f"({needed_by} will fail without it).",
            flush=True,
        )
        return
    # apt-get says what it fetches and sets up (a minute or two for chromium): not silent.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"$ apt-get update  (for {command})", flush=True)
    subprocess.call([apt, "-q", "update"], env=env)
    print(f"$ apt-get install -y {names}", flush=True)
    if subprocess.call([apt, "-q", "install", "-y", *packages], env=env) != 0:
        print(f"installing {names} failed: {needed_by} will fail; see apt-get above.", flush=True)


def parallel(argv: list[str]) -> list[str]:
    """Three worker processes per two cores (at most 6), each taking whole test files, so a
    module's fleet and fixtures stay in one process; ``-n 0`` (or any ``-n``) given by the
    caller wins.

    More workers than cores, because the fault scenarios mostly wait (a frozen store, a drain,
    a rebalance), but not three per core as before: the machines differ from one session to
    the next, and every test starts processes of its own (a fresh fleet worker imports for
    about 2.5 s of CPU here, a CLI call for 1.5 s; the fleets are forked ready-imported now,
    ``tests/launcher.py``). On a machine about twice as slow as the one
    that ran 6 workers green in 9 to 13 minutes, 6 starved them: a load of 24 on 2 cores, a
    CLI call still importing after 60 s, fifteen failures in the first tenth of the run.
    There 3 workers ran tests/e2e green in 17 minutes (364 tests, a load of 6 to 8)."""
    if any(arg == "-n" or arg.startswith(("-n", "--numprocesses")) for arg in argv):
        return []
    # In the order of collection (tests/conftest.py puts the long files first), not reordered
    # by test count: that ran the files of many short tests first and the long scenarios last.
    workers = str(min(6, max(1, 3 * (os.cpu_count() or 1) // 2)))
    return ["-n", workers, "--dist", "loadfile", "--no-loadscope-reorder"]


def compile_once() -> None:
    """Our packages' bytecode, written once before the run.

    Where PYTHONDONTWRITEBYTECODE is set (as on our CI machines), every process the tests start
    (each worker of a fleet, each CLI call: hundreds in a run) would compile our ~200 modules
    from source again: about 0.4 s of CPU each. Python still reads bytecode that is there, and
    checks it against its source's modification time, so an edit during a run is never missed.
    """
    root = Path(__file__).resolve().parent.parent
    packages = [str(root / name) for name in ("topics", "snapshot_rules", "workers", "tests")]
    subprocess.call(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *packages], stdout=subprocess.DEVNULL
    )


def docs() -> int:
    """The documentation site, built strictly: a broken link, a missing page or a generated
    table that fails to render fails the run (the site itself goes to a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="eventfleet-site-") as site:
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
        argv = ["mkdocs", "build", "--strict", "--quiet", "--site-dir", site]
        print(f"$ {' '.join(argv[:4])}", flush=True)
        root = Path(__file__).resolve().parent.parent
        return subprocess.call([sys.executable, "-m", *argv], env=env, cwd=root)


def main() -> int:
    ensure_system_tools()
    compile_once()
    failed = []
    code = ("topics", "snapshot_rules", "workers", "tests")
    if run("ruff", "check", *code) != 0:
        failed.append("ruff")
    if run("ruff", "format", "--check", *code, "docs") != 0:  # docs: the guides' Python blocks
        print("run `ruff format .` to format them", flush=True)
        failed.append("ruff format")
    if run("mypy") != 0:
        failed.append("mypy")
    if docs() != 0:
        failed.append("docs")
    code = run("pytest", "-q", "-p", "no:cacheprovider", *parallel(sys.argv[1:]), *sys.argv[1:])
    if code == NO_TESTS_COLLECTED:
        print("pytest collected no tests: that is a failure, not a pass.", flush=True)
    if code != 0:
        failed.append("pytest")
    if failed:
        print(f"FAILED: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
