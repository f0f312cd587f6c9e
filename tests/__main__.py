"""The whole test command: ruff, mypy (strict) and pytest; pytest's "no tests" counts as failure."""

from __future__ import annotations

import subprocess
import sys

NO_TESTS_COLLECTED = 5


def run(*argv: str) -> int:
    print(f"$ {' '.join(argv)}", flush=True)
    return subprocess.call([sys.executable, "-m", *argv])


def main() -> int:
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
