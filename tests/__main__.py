"""The whole test command: ruff, mypy (strict) and pytest; pytest's "no tests" counts as failure.

System tools the tests need (promtool, from Debian's prometheus package) are installed first
when missing and this user may; otherwise one line says how, and the tests that need them fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

NO_TESTS_COLLECTED = 5


def run(*argv: str) -> int:
    print(f"$ {' '.join(argv)}", flush=True)
    return subprocess.call([sys.executable, "-m", *argv])


def ensure_system_tools() -> None:
    """Install promtool (Debian package prometheus) when it is missing and apt-get can run."""
    if shutil.which("promtool"):
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        print(
            "promtool is missing: run `apt-get install -y prometheus` as root "
            "(the alert tests will fail without it).",
            flush=True,
        )
        return
    print("$ apt-get install -y prometheus  (for promtool)", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.call([apt, "update", "-qq"], env=env, **quiet)  # type: ignore[call-overload]
    if subprocess.call([apt, "install", "-y", "-qq", "prometheus"], env=env, **quiet) != 0:  # type: ignore[call-overload]
        print("installing prometheus failed: the alert tests will fail; see apt-get.", flush=True)


def main() -> int:
    ensure_system_tools()
    failed = []
    if run("ruff", "check", "topics", "snapshot_rules", "workers", "tests") != 0:
        failed.append("ruff")
    if run("mypy") != 0:
        failed.append("mypy")
    code = run("pytest", "-q", "-p", "no:cacheprovider", *sys.argv[1:])
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
