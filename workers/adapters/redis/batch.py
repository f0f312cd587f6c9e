"""One Redis round trip per loop tick: every marker and command-memory call is coalesced.

Calls made while a round trip is in flight are queued and sent together as one pipeline
(EVALSHA for scripts, plain commands otherwise), bounded by ``timeout_ms``. A call whose
caller does not wait for it (``submit``) rides along with the next round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import TypeAlias

from prometheus_client import Histogram
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from topics.errors import MarkerUnavailable
from workers.secrets import redact

log = logging.getLogger(__name__)
# A cluster that lost a slot's owner raises RedisClusterException, which is no RedisError.
_UNAVAILABLE = (TimeoutError, RedisError, RedisClusterException, OSError)

Reply: TypeAlias = bytes | int | list["Reply"] | None
"""What a call answers, as redis-py hands it over with ``decode_responses`` off (as
``connect_redis`` connects): a bulk string as bytes (``GET``, a Lua string), an integer (``SETBIT``,
a Lua number, Lua true as 1), nil as None (Lua false too), an array as a list (a Lua table,
``BITFIELD``); redis-py's callbacks answer ``SET`` and ``PING`` with a bool, which is an int. An
error reply is no Reply: the call raises ``MarkerUnavailable``."""


@dataclass(frozen=True, slots=True)
class Lua:
    """A Lua script and its SHA1, as Redis names it for EVALSHA."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


@dataclass(frozen=True, slots=True)
class _Call:
    op: Lua | str  # a script, or a plain command name (GET, SET, ...)
    keys: tuple[str, ...]
    args: tuple[str | bytes, ...]
    future: asyncio.Future[Reply]


class RedisBatcher:
    """Coalesces concurrent calls into one pipeline per round trip."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        scripts: tuple[Lua, ...],
        timeout_ms: int,
        latency: Histogram,
        linger_ms: float = 20.0,
    ) -> None:
        self.redis = redis
        self._scripts = scripts
        self._timeout_s = timeout_ms / 1000
        self._latency = latency
        self._pending: list[_Call] = []
        self._flushing = False
        self._background: set[asyncio.Future[Reply]] = set()
        self._linger_s = linger_ms / 1000
        self._timer: asyncio.TimerHandle | None = None

    async def call(
        self, op: Lua | str, keys: tuple[str, ...], args: tuple[str | bytes, ...]
    ) -> Reply:
        """Send with the current round trip; raises MarkerUnavailable if Redis does not answer."""
        future = self._queue(op, keys, args)
        try:
            if not self._flushing:
                # No round trip in flight: this caller sends the queue itself (no extra task).
                self._flushing = True
                await self._flush_all()
            return await future
        except asyncio.CancelledError:
            # The caller is gone (a client hung up, a drain): nobody will read its answer.
            if future.done() and not future.cancelled():
                future.exception()  # retrieved here, not logged as "never retrieved"
            else:
                future.cancel()
            raise

    def submit(self, op: Lua | str, keys: tuple[str, ...], args: tuple[str | bytes, ...]) -> None:
        """Send with the next round trip without waiting for it; a failure is only logged.

        It lingers up to ``linger_ms`` for a call to ride along with (one round trip less
        per request when load is light); under load the next call carries it at once.
        """
        future = self._queue(op, keys, args)
        self._background.add(future)
        future.add_done_callback(self._settled)
        if self._timer is None and not self._flushing:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._kick)

    def _kick(self) -> None:
        self._timer = None
        if self._pending and not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush_all())

    async def run_id(self, key: str) -> str:
        """The run id of the server holding ``key`` (new after a restart or a failover)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                if isinstance(self.redis, RedisCluster):
                    node = self.redis.get_node_from_key(key)
                    info = await self.redis.info("server", target_nodes=node)
                else:
                    info = await self.redis.info("server")
        except _UNAVAILABLE as e:
            log.info("Redis INFO failed: %s", redact(repr(e)))
            raise MarkerUnavailable(f"Redis did not answer within {self._timeout_s:g} s.") from e
        return str(info.get("run_id", "")) if isinstance(info, dict) else ""

    async def drain(self) -> None:
        """Send and wait for calls nobody waits for (on shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._kick()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _queue(
        self, op: Lua | str, keys: tuple[str, ...], args: tuple[str | bytes, ...]
    ) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(op, keys, args, future))
        return future

    def _settled(self, future: asyncio.Future[Reply]) -> None:
        self._background.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("a background Redis call failed: %s", future.exception())

    async def _flush_all(self) -> None:
        """Send what is queued; calls queued meanwhile go in the next round trip, by a task."""
        try:
            await self._flush()
        finally:
            if self._pending:
                asyncio.get_running_loop().create_task(self._flush_all())
            else:
                self._flushing = False

    async def _execute(self, batch: list[_Call]) -> list[Reply | Exception]:
        """Each call's reply, or the error Redis answered it with (the call's own result)."""
        if len(batch) == 1 and not isinstance(self.redis, RedisCluster):
            # One call (light load): sent as it is; a pipeline of one costs ~18 µs more CPU.
            call = batch[0]
            op: tuple[str | int, ...] = (
                ("EVALSHA", call.op.sha, len(call.keys)) if isinstance(call.op, Lua) else (call.op,)
            )
            try:
                result: Reply = await self.redis.execute_command(  # type: ignore[no-untyped-call]  # redis-py's execute_command has no annotations
                    *op, *call.keys, *call.args
                )
                return [result]
            except ResponseError as e:  # as the pipeline answers it: the call's own result
                return [e]
        pipe = self.redis.pipeline(transaction=False)
        for call in batch:
            if isinstance(call.op, Lua):
                # execute_command, not pipe.evalsha(): redis-py blocks the evalsha method on a
                # cluster pipeline (its keys could span slots); ours share one slot by hash
                # tag, and the cluster pipeline routes EVALSHA by its first key.
                pipe.execute_command("EVALSHA", call.op.sha, len(call.keys), *call.keys, *call.args)
            else:
                pipe.execute_command(call.op, *call.keys, *call.args)
        results: list[Reply | Exception] = await pipe.execute(raise_on_error=False)
        return results

    async def _flush(self) -> None:
        if not self._pending:
            return
        if self._timer is not None:  # the lingering calls go now
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                results = await self._execute(batch)
                if any(isinstance(r, NoScriptError) for r in results):
                    # Redis restarted or flushed its scripts: load them, send again once.
                    for script in self._scripts:
                        await self.redis.script_load(script.source)
                    results = await self._execute(batch)
        except _UNAVAILABLE as e:
            log.info("Redis round trip failed: %s", redact(repr(e)))
            _fail(batch, MarkerUnavailable(f"Redis did not answer within {self._timeout_s:g} s."))
            return
        except BaseException:
            # Cancelled while carrying other callers' calls: they must not hang.
            _fail(batch, MarkerUnavailable("the Redis round trip was cancelled."))
            raise
        self._latency.observe(time.perf_counter() - started)
        for call, result in zip(batch, results, strict=True):
            if call.future.done():
                continue
            if isinstance(result, Exception):
                # e.g. a failover in progress (READONLY, CLUSTERDOWN, TRYAGAIN): a 503 whose
                # message is a sentence; the driver's text goes to the log.
                log.warning("Redis refused a call: %s", redact(repr(result)))
                call.future.set_exception(MarkerUnavailable("Redis refused the call."))
            else:
                call.future.set_result(result)


def _fail(batch: list[_Call], error: Exception) -> None:
    for call in batch:
        if not call.future.done():
            call.future.set_exception(error)


def text(value: Reply) -> str:
    """A reply as text: a bulk string decoded, anything else as ``str`` shows it."""
    return value.decode() if isinstance(value, bytes) else str(value)


def data(value: Reply) -> bytes:
    """A reply as bytes: a bulk string as it is, anything else as ``str`` shows it, encoded."""
    return value if isinstance(value, bytes) else str(value).encode()


def array(value: Reply) -> list[Reply]:
    """An array reply (a Lua table, ``BITFIELD``); anything else is a TypeError, as unpacking
    it would have been."""
    if isinstance(value, list):
        return value
    raise TypeError(f"Redis answered {value!r} where an array was expected")


def integer(value: Reply) -> int:
    """A number Redis answered as an integer or as a string (Lua's ``tostring``)."""
    if isinstance(value, bytes | int):
        return int(value)
    raise TypeError(f"Redis answered {value!r} where a number was expected")
