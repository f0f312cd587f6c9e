"""Progress of a benchmark on stderr: a line per step, so a long run is never silent."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


def step(text: str) -> None:
    """Say what the benchmark does now (stderr; stdout keeps only the tables)."""
    print(f"  bench [{time.monotonic() - _STARTED:6.1f} s] {text}", file=sys.stderr, flush=True)


class Ticker:
    """Redraws one progress line at most once a second, and ends it with a newline."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._said = 0.0

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._said >= 1.0:
            self._said = now
            print(f"\r  bench: {self.what}: {done}/{total}   ", end="", file=sys.stderr, flush=True)

    def done(self, total: int) -> None:
        if self._said:
            print(f"\r  bench: {self.what}: {total}/{total}   ", file=sys.stderr, flush=True)
