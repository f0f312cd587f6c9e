"""One Redis round trip per loop tick: every marker and command-memory call is coalesced.

Calls made while a round trip is in flight are queued and sent together, bounded by
``timeout_ms``: on a standalone Redis (or a Sentinel's master) as one call of a script that
runs them all (``bundle``: one command and one reply for the batch), on a Cluster, or with a
call too large for the bundle, as one pipeline (EVALSHA for scripts, plain commands otherwise). A
call whose caller does not wait for it (``submit``) rides along with the next round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from prometheus_client import Histogram
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from topics.errors import MarkerUnavailable
from workers.adapters.redis.bundle import MAX_CALL_ARGS, MAX_CALLS, Bundle
from workers.adapters.redis.replies import Lua, Reply
from workers.secrets import redact

log = logging.getLogger(__name__)
# A cluster that lost a slot's owner raises RedisClusterException, which is no RedisError.
_UNAVAILABLE = (TimeoutError, RedisError, RedisClusterException, OSError)


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
        self._cluster = isinstance(redis, RedisCluster)
        self._bundle = None if self._cluster else Bundle(scripts)
        self._scripts = scripts if self._bundle is None else (*scripts, self._bundle.lua)
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

    async def ping(self) -> bool:
        """Whether Redis answers a PING with the current round trip."""
        try:
            return bool(await self.call("PING", (), ()))
        except MarkerUnavailable:
            return False

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
        if len(batch) == 1 and not self._cluster:
            # One call (light load): sent as it is; a pipeline of one costs ~18 µs more CPU.
            call = batch[0]
            op: tuple[str | int, ...] = (
                ("EVALSHA", call.op.sha, len(call.keys)) if isinstance(call.op, Lua) else (call.op,)
            )
            return [await self._one(*op, *call.keys, *call.args)]
        if self._bundle is not None and all(
            len(c.keys) + len(c.args) <= MAX_CALL_ARGS for c in batch
        ):
            return await self._bundled(self._bundle, batch)
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

    async def _one(self, *command: str | bytes | int) -> Reply | Exception:
        """One command's reply, or the error Redis answered it with."""
        try:
            result: Reply = await self.redis.execute_command(*command)
        except ResponseError as e:  # as a pipeline answers it: the call's own result
            return e
        return result

    async def _bundled(self, bundle: Bundle, batch: list[_Call]) -> list[Reply | Exception]:
        """The batch as calls of the bundle script, ``MAX_CALLS`` a call (one, under load)."""
        results: list[Reply | Exception] = []
        for start in range(0, len(batch), MAX_CALLS):
            part = batch[start : start + MAX_CALLS]
            keys, args = bundle.arguments([(c.op, c.keys, c.args) for c in part])
            reply = await self._one("EVALSHA", bundle.lua.sha, len(keys), *keys, *args)
            # A refused bundle (its script not loaded, or Redis busy) refuses each of its calls.
            results += (
                [reply] * len(part)
                if isinstance(reply, Exception)
                else bundle.replies(reply, len(part))
            )
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
