"""wrk at a set pace, as one principal: the fairness row's load (``fairness.py``).

A Lua script paces each wrk thread to ``rate_per_s`` (its own schedule, a slot per request; a
slot missed is not made up: when the server is slower, the load is as fast as it answers),
posts a fresh order per request as the token's principal, and counts its answers: 2xx, 429 and
any other. Measured (``measure``: one connection per thread), it keeps the latency of each 2xx
answer only, timed in the script around its own request, so a quick refusal never flatters a
percentile. A run ends after ``count`` answers of a thread, or when stopped (SIGINT).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files

from workers.devtools.bench.wrk import launched, summary

SCRIPT = files(__package__).joinpath("paced.lua").read_bytes()
"""The pacing Lua script (beside this module)."""


@dataclass(frozen=True, slots=True)
class Load:
    """One principal's load: its token, pace and shape."""

    token: str
    rate_per_s: float
    """Requests a second in all (0: as fast as the server answers)."""
    connections: int
    measure: bool = False
    """Keep each 2xx answer's latency (one connection per wrk thread)."""


@dataclass(frozen=True, slots=True)
class Answered:
    """What one run of wrk was answered: 2xx, 429, any other status, and the 2xx latencies."""

    seconds: float
    ok: int
    refused: int
    other: int
    other_status: int
    p50_ms: float | None
    p99_ms: float | None
    socket_errors: int

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def refused_per_s(self) -> float:
        return self.refused / self.seconds if self.seconds > 0 else 0.0


async def paced(url: str, load: Load, *, run: str, body: bytes, count: int) -> Answered:
    """``load`` until each wrk thread has ``count`` answers."""
    async with running(url, load, run=run, body=body, count=count) as result:
        pass
    return result.answered


class _Result:
    """Filled in when a ``running`` load has ended."""

    answered: Answered


@asynccontextmanager
async def running(
    url: str, load: Load, *, run: str, body: bytes, count: int = 0
) -> AsyncIterator[_Result]:
    """``load`` on ``url`` while the block runs (``count`` 0), or until each thread has
    ``count`` answers; the result once the block has ended (wrk stopped, or done by itself)."""
    threads = load.connections if load.measure else 1
    per_thread = max(1, count // threads) if count else 0
    rate = load.rate_per_s / threads
    result = _Result()
    options = (f"-t{threads}", f"-c{load.connections}", "-d3600s")
    extra = (load.token, f"{rate:.3f}", "1" if load.measure else "0")
    async with launched(
        SCRIPT, url, options, run=run, count=per_thread, body=body, extra=extra
    ) as process:
        try:
            yield result
        finally:
            if not count and process.returncode is None:
                process.send_signal(signal.SIGINT)  # wrk prints its summary, then exits
            out, err = await process.communicate()
    raw = summary(out, err, process.returncode)
    result.answered = Answered(
        seconds=raw["duration_us"] / 1e6,
        ok=raw["ok"],
        refused=raw["refused"],
        other=raw["other"],
        other_status=raw["other_status"],
        p50_ms=raw["p50_us"] / 1000 if raw["p50_us"] >= 0 else None,
        p99_ms=raw["p99_us"] / 1000 if raw["p99_us"] >= 0 else None,
        socket_errors=raw["socket"],
    )
