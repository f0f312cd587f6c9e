"""wrk, a compiled load generator, drives the HTTP rows: its CPU per request is a tenth of a
Python client's, so on a 2-core machine the load is not what caps the baseline.

One wrk thread per run; a Lua script names a fresh order per request (``<run>-<n>``), counts
the answers and ends the run (SIGINT to wrk itself) once ``count`` have come back, so a run is
about ``count`` requests, not a fixed duration. Every answer outside 2xx is counted (wrk's own
count misses 1xx and 3xx) and fails the run. wrk notices the stop within 100 ms, so a few
more are answered: the result counts every answer over wrk's whole run.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

import orjson

from workers.devtools.bench.owned import owned

INSTALL = "wrk is missing: run `apt-get install -y wrk` as root (`python -m tests` does it)"

SCRIPT = files(__package__).joinpath("post.lua").read_bytes()
"""The run's Lua script (beside this module)."""


class WrkMissing(RuntimeError):
    """wrk is not installed; the message says how to install it."""


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing(INSTALL)
    return found


async def wrk(url: str, *, connections: int, count: int, run: str, body: bytes) -> dict[str, float]:
    """POST ``body`` to ``count`` orders (``<run>-1``, ``<run>-2``, …) over ``connections``
    connections; wrk's summary.

    Raises when any answer was not 2xx or a socket failed: a rate of errors is no rate.
    """
    with tempfile.TemporaryDirectory(prefix="eventfleet-wrk-") as tmp:
        script, payload = Path(tmp, "post.lua"), Path(tmp, "body.json")
        _write(script, SCRIPT)
        _write(payload, body)
        async with owned(
            wrk_path(),
            "-t1",
            f"-c{connections}",
            "-d600s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url,
            "--",
            run,
            str(count),
            str(payload),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        ) as process:
            out, err = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode().strip() or out!r}")
    result: dict[str, float] = orjson.loads(lines[-1])
    if result["status"] or result["socket"]:
        raise RuntimeError(
            f"{url} answered {result['status']} of {result['count']} requests with a non-2xx "
            f"status and {result['socket']} failed on the socket: a rate of errors is no rate"
        )
    return result


def _write(path: Path, data: bytes) -> None:
    """A few hundred bytes to a fresh temporary file: nothing the loop waits on."""
    path.write_bytes(data)
