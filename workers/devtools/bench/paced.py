"""wrk at a set pace, as one principal: the fairness row's load (``fairness.py``).

A Lua script paces each wrk thread to ``rate_per_s`` (its own schedule, a slot per request; a
slot missed is not made up: when the server is slower, the load is as fast as it answers),
posts a fresh order per request as the token's principal, and counts its answers: 2xx, 429 and
any other. Measured (``measure``: one connection per thread), it keeps the latency of each 2xx
answer only, timed in the script around its own request, so a quick refusal never flatters a
percentile. A run ends after ``count`` answers of a thread, or when stopped (SIGINT).
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from workers.devtools.bench.owned import owned
from workers.devtools.bench.wrk import wrk_path

SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } eventfleet_timespec;
  int clock_gettime(int clock, eventfleet_timespec *ts);
  int getpid(void); int kill(int pid, int sig);
]]
local ts = ffi.new("eventfleet_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
local run, limit, body, interval_us, measure = "", 0, "", 0, false
local headers = { ["Content-Type"] = "application/json" }
local counter, answered, sent_at, next_at = 0, 0, 0, 0
ok, refused, other, other_status = 0, 0, 0, 0  -- globals: done() reads them from each thread
lat = {}
threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  run, limit = args[1], tonumber(args[2])
  local f = assert(io.open(args[3], "rb")); body = f:read("*a"); f:close()
  headers["Authorization"] = "Bearer " .. args[4]
  local rate = tonumber(args[5])
  if rate > 0 then interval_us = 1000000 / rate end
  measure = args[6] == "1"
end
function delay()
  if interval_us == 0 then return 0 end
  local now = now_us()
  if next_at < now then next_at = now end
  local wait = next_at - now
  next_at = next_at + interval_us
  return math.floor(wait / 1000)
end
function request()
  counter = counter + 1
  sent_at = now_us()
  return wrk.format("POST", "/v1/order/" .. run .. "-" .. id .. "-" .. counter .. "/events",
                    headers, body)
end
function response(status, h, b)
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
    if measure then lat[#lat + 1] = now_us() - sent_at end
  elseif status == 429 then
    refused = refused + 1
  else
    other = other + 1
    other_status = status
  end
  if limit > 0 and answered == limit then ffi.C.kill(ffi.C.getpid(), 2) end
end
function done(summary, latency, requests)
  local all, o, r, x, xs = {}, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o, r, x = o + t:get("ok"), r + t:get("refused"), x + t:get("other")
    if t:get("other_status") ~= 0 then xs = t:get("other_status") end
    for _, v in ipairs(t:get("lat")) do all[#all + 1] = v end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return -1 end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  local e = summary.errors
  io.write(string.format(
    '{"duration_us":%d,"ok":%d,"refused":%d,"other":%d,"other_status":%d,' ..
    '"p50_us":%.0f,"p99_us":%.0f,"socket":%d}\n',
    summary.duration, o, r, x, xs, pct(50), pct(99), e.connect + e.read + e.write + e.timeout))
end
"""


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
    with tempfile.TemporaryDirectory(prefix="eventfleet-paced-") as tmp:
        script, payload = Path(tmp, "paced.lua"), Path(tmp, "body.json")
        _write(script, SCRIPT.encode())
        _write(payload, body)
        async with owned(
            wrk_path(),
            f"-t{threads}",
            f"-c{load.connections}",
            "-d3600s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url,
            "--",
            run,
            str(per_thread),
            str(payload),
            load.token,
            f"{rate:.3f}",
            "1" if load.measure else "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        ) as process:
            try:
                yield result
            finally:
                if not count and process.returncode is None:
                    process.send_signal(signal.SIGINT)  # wrk prints its summary, then exits
                out, err = await process.communicate()
    result.answered = _parse(out, err, process.returncode)


def _parse(out: bytes, err: bytes, code: int | None) -> Answered:
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        raise RuntimeError(f"wrk failed ({code}): {err.decode().strip() or out!r}")
    raw = orjson.loads(lines[-1])
    return Answered(
        seconds=raw["duration_us"] / 1e6,
        ok=raw["ok"],
        refused=raw["refused"],
        other=raw["other"],
        other_status=raw["other_status"],
        p50_ms=raw["p50_us"] / 1000 if raw["p50_us"] >= 0 else None,
        p99_ms=raw["p99_us"] / 1000 if raw["p99_us"] >= 0 else None,
        socket_errors=raw["socket"],
    )


def _write(path: Path, data: bytes) -> None:
    """A few hundred bytes to a fresh temporary file: nothing the loop waits on."""
    path.write_bytes(data)
