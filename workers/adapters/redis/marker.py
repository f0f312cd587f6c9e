"""The Redis marker: atomic check-and-mark of an aggregate's latest event type, and command answers.

One key per aggregate holds ``<event type>|<event id>`` with a TTL. Both the check-and-mark
and the restore are Lua scripts, so of two concurrent conflicting requests exactly one
is accepted. Concurrent calls are coalesced into one pipeline per round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from topics.errors import MarkerUnavailable
from workers.metrics import Metrics
from workers.ports import MarkRequest, MarkResult

UNKNOWN = "?"  # the caller has not looked in the store yet
NO_EVENTS = "-"  # the store holds no event of the aggregate

CHECK_AND_MARK = """
if ARGV[6] == '1' then
  local answer = redis.call('GET', KEYS[2])
  if answer then return {'duplicate', answer} end
end
local mark = redis.call('GET', KEYS[1])
local current
if mark then
  current = string.match(mark, '^([^|]*)|')
elseif ARGV[5] == '?' then
  return {'missing', ''}
elseif ARGV[5] == '-' then
  current = 'none'
else
  current = ARGV[5]
end
for i = 7, #ARGV do
  if ARGV[i] == current then
    redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
    if ARGV[6] == '1' then
      redis.call('SET', KEYS[2], 'pending|' .. ARGV[2], 'PX', ARGV[4])
    end
    return {'marked', mark or ''}
  end
end
return {'rejected', current}
"""

RESTORE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return 1
"""


class RedisMarker:
    """Marks and command answers in Redis, every call bounded by ``timeout_ms``."""

    def __init__(
        self,
        redis: Redis,
        metrics: Metrics,
        *,
        prefix: str = "eventfleet:",
        ttl_s: int = 86_400,
        command_ttl_s: int = 86_400,
        timeout_ms: int = 2000,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = str(ttl_s * 1000)
        self._command_ttl_s = command_ttl_s
        self._command_ttl_ms = str(command_ttl_s * 1000)
        self._timeout_s = timeout_ms / 1000
        # Plain EVALSHA in the pipeline: redis-py's Script objects would make every
        # pipeline send SCRIPT EXISTS first, one more round trip per call.
        self._check = Lua(CHECK_AND_MARK)
        self._restore = Lua(RESTORE)
        self._latency = metrics.marker_latency
        self._pending: list[tuple[Any, list[str], list[str], asyncio.Future[Any]]] = []
        self._flushing = False

    def _keys(self, aggregate_key: str, command_id: str | None) -> list[str]:
        # The hash tag keeps both keys of an aggregate in one cluster slot.
        tag = "{" + aggregate_key + "}"
        return [f"{self._prefix}mark:{tag}", f"{self._prefix}cmd:{tag}:{command_id or ''}"]

    async def check_and_mark(self, request: MarkRequest) -> MarkResult:
        args = [
            request.event_type,
            request.event_id,
            self._ttl_ms,
            self._command_ttl_ms,
            request.fallback,
            "1" if request.command_id else "0",
            *request.allowed,
        ]
        status, value = await self._call(
            self._check, self._keys(request.aggregate_key, request.command_id), args
        )
        return MarkResult(_text(status), _text(value))

    async def restore(self, request: MarkRequest, previous: str) -> None:
        """Undo our mark (only if it is still ours) and forget the pending command."""
        pending = f"pending|{request.event_id}" if request.command_id else ""
        args = [request.mark, previous, self._ttl_ms, pending]
        await self._call(self._restore, self._keys(request.aggregate_key, request.command_id), args)

    async def remember_answer(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        key = self._keys(aggregate_key, command_id)[1]
        await self._bounded(
            self._redis.set(key, answer, ex=self._command_ttl_s), "saving an answer"
        )

    async def claim_command(self, aggregate_key: str, command_id: str, event_id: str) -> str | None:
        """Claim a command id for a new request; returns the earlier answer if there is one."""
        key = self._keys(aggregate_key, command_id)[1]
        claimed = await self._bounded(
            self._redis.set(key, f"pending|{event_id}", ex=self._command_ttl_s, nx=True),
            "claiming a command id",
        )
        if claimed:
            return None
        return await self.answer(aggregate_key, command_id) or ""

    async def answer(self, aggregate_key: str, command_id: str) -> str | None:
        key = self._keys(aggregate_key, command_id)[1]
        value = await self._bounded(self._redis.get(key), "reading an answer")
        return None if value is None else _text(value)

    async def forget_command(self, aggregate_key: str, command_id: str, event_id: str) -> None:
        """Release a claimed command id whose request failed (only our own pending claim)."""
        key = self._keys(aggregate_key, command_id)[1]
        if await self.answer(aggregate_key, command_id) == f"pending|{event_id}":
            await self._bounded(self._redis.delete(key), "releasing a command id")

    async def ping(self) -> bool:
        try:
            return bool(await self._bounded(self._redis.ping(), "pinging"))
        except MarkerUnavailable:
            return False

    async def _bounded(self, call: Any, what: str) -> Any:
        try:
            return await asyncio.wait_for(call, self._timeout_s)
        except (TimeoutError, RedisError, OSError) as e:
            raise MarkerUnavailable(f"Redis did not answer while {what}: {e!r}") from e

    async def _call(self, script: Lua, keys: list[str], args: list[str]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((script, keys, args, future))
        if not self._flushing:
            # No round trip in flight: this caller sends the queue itself (no extra task).
            self._flushing = True
            await self._flush_all()
        return await future

    async def _flush_all(self) -> None:
        """Send what is queued; calls queued meanwhile go in the next round trip, by a task."""
        try:
            await self._flush()
        finally:
            if self._pending:
                asyncio.get_running_loop().create_task(self._flush_all())
            else:
                self._flushing = False

    async def _execute(
        self, batch: list[tuple[Any, list[str], list[str], asyncio.Future[Any]]]
    ) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def _flush(self) -> None:
        """Send everything queued as one pipeline."""
        if self._pending:
            batch, self._pending = self._pending, []
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout_s):
                    results = await self._execute(batch)
                    if any(isinstance(r, NoScriptError) for r in results):
                        # Redis restarted or flushed its scripts: load them, send again once.
                        for script in (self._check, self._restore):
                            await self._redis.script_load(script.source)
                        results = await self._execute(batch)
            except (TimeoutError, RedisError, OSError) as e:
                _fail(batch, MarkerUnavailable(f"Redis did not answer the marker: {e!r}"))
                return
            except BaseException:
                # Cancelled while carrying other callers' calls: they must not hang.
                _fail(batch, MarkerUnavailable("the marker round trip was cancelled"))
                raise
            self._latency.observe(time.perf_counter() - started)
            for (*_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(MarkerUnavailable(f"Redis refused the marker: {result!r}"))
                else:
                    future.set_result(result)


@dataclass(frozen=True, slots=True)
class Lua:
    """A Lua script and its SHA1, as Redis names it for EVALSHA."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def _fail(
    batch: list[tuple[Any, list[str], list[str], asyncio.Future[Any]]], error: Exception
) -> None:
    for *_, future in batch:
        if not future.done():
            future.set_exception(error)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
