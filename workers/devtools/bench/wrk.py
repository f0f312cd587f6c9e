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
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

import orjson

from topics.jsonvalue import JsonObject
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
    options = ("-t1", f"-c{connections}", "-d600s")
    async with launched(SCRIPT, url, options, run=run, count=count, body=body) as process:
        out, err = await process.communicate()
    result: dict[str, float] = summary(out, err, process.returncode)
    if result["status"] or result["socket"]:
        raise RuntimeError(
            f"{url} answered {result['status']} of {result['count']} requests with a non-2xx "
            f"status and {result['socket']} failed on the socket: a rate of errors is no rate"
        )
    return result


@asynccontextmanager
async def launched(
    script: bytes,
    url: str,
    options: Sequence[str],
    *,
    run: str,
    count: int,
    body: bytes,
    extra: Sequence[str] = (),
) -> AsyncIterator[asyncio.subprocess.Process]:
    """wrk with ``options`` running Lua ``script`` against ``url`` while the block runs, its
    output piped; the script's arguments: ``run``, ``count``, the path of ``body``, ``extra``."""
    with tempfile.TemporaryDirectory(prefix="eventfleet-wrk-") as tmp:
        lua, payload = Path(tmp, "script.lua"), Path(tmp, "body.json")
        _write(lua, script)
        _write(payload, body)
        async with owned(
            wrk_path(),
            *options,
            "--timeout",
            "30s",
            "-s",
            str(lua),
            url,
            "--",
            run,
            str(count),
            str(payload),
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        ) as process:
            yield process


def summary(out: bytes, err: bytes, code: int | None) -> JsonObject:
    """The JSON summary a run's script printed last; RuntimeError when wrk failed."""
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        raise RuntimeError(f"wrk failed ({code}): {err.decode().strip() or out!r}")
    result: JsonObject = orjson.loads(lines[-1])
    return result


def _write(path: Path, data: bytes) -> None:
    """A few hundred bytes to a fresh temporary file: nothing the loop waits on."""
    path.write_bytes(data)
