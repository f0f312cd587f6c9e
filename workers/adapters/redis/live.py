"""The live feed on Redis Pub/Sub: stored events announced to every process serving subscribers.

Announcing never waits: records go to a bounded queue that one task publishes in batches, each
one call of a Lua script that runs a ``PUBLISH`` per record on the channel
``<prefix>a:<type>:<id>`` (packed by hiredis: one command and one reply per batch instead of a
pipeline's per record, 14-19 µs to ~2 µs of the storing process's CPU per announcement); when
Redis is slow or down the batch is dropped and counted. Listening shares one subscriber connection
per process: a channel is subscribed while a listener wants it, a whole type through the pattern
``<prefix>a:<type>:*``. When that connection fails, every listener hears None (it may have
missed messages) and again once the connection is back and resubscribed, so each subscriber
reads its gap from the store. Pub/Sub is at most once by design; the store makes it exact.

The subscriber reads without a timeout (a timer per message cost a fifth of a message's
handling); a keeper pings the connection when it has been quiet ``health_check_s`` and, if
nothing (not even the answer) comes within as long again after the ping, takes it as lost: a Redis
that is paused or cut off without a reset is noticed, not only one that closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from topics.envelope import decode
from topics.errors import InvalidEnvelope
from workers.adapters.redis.connect import pubsub_nodes
from workers.adapters.redis.packing import fast_packing
from workers.adapters.redis.replies import Lua
from workers.ports import Listening, LiveChannel, LiveDeliver, Outgoing

log = logging.getLogger(__name__)
_BATCH = 500
_PUBLISH_ALL = Lua("""
for i = 1, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
""")


class RedisLiveFeed:
    """Announces on Redis Pub/Sub and fans what it hears out to this process's listeners."""

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str,
        timeout_ms: int = 2000,
        queue_limit: int = 10_000,
        health_check_s: float = 5.0,
    ) -> None:
        self._prefix = prefix
        self._timeout_s = timeout_ms / 1000
        self._queue: deque[tuple[str, bytes]] = deque()
        self._queue_limit = queue_limit
        no_retry = Retry(NoBackoff(), 0)  # a reconnect must be seen here: listeners resync
        self._publishers = _Nodes(
            pubsub_nodes(
                redis_url,
                timeout_ms=timeout_ms,
                socket_timeout=self._timeout_s,
                socket_connect_timeout=self._timeout_s,
                retry=no_retry,
            ),
            fast=True,
        )
        self._subscribers = _Nodes(
            pubsub_nodes(
                redis_url,
                timeout_ms=timeout_ms,
                socket_timeout=None,
                socket_connect_timeout=self._timeout_s,
                health_check_interval=health_check_s,
                retry=no_retry,
            )
        )
        self._listeners: dict[str, list[LiveDeliver]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}  # Redis confirmed the subscription
        self._pubsub: PubSub | None = None
        self._health_check_s = health_check_s
        self._heard_at = 0.0  # loop time the subscriber connection last brought anything
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self.dropped = 0
        """Announcements dropped: the queue was full or Redis did not take them."""
        self.resyncs = 0
        """Times every listener was told it may have missed messages."""
        self.pings = 0
        """Pings sent on a quiet subscriber connection."""
        self.reconnects = 0
        """Times the subscriber connection came back (on the same node or the next) and every
        channel was subscribed again."""

    def _channel(self, channel: LiveChannel) -> str:
        if channel.aggregate_id is None:
            return f"{self._prefix}a:{channel.aggregate_type}:*"
        return f"{self._prefix}a:{channel.aggregate_type}:{channel.aggregate_id}"

    def announce(self, records: Sequence[Outgoing]) -> None:
        if self._closed:
            return
        self._start()
        for record in records:
            if record.key is None:
                continue
            if len(self._queue) >= self._queue_limit:
                self.dropped += 1  # subscribers read it from the store
                continue
            self._queue.append((f"{self._prefix}a:{record.key.decode()}", record.value))
        self._wake.set()

    async def listen(self, channel: LiveChannel, deliver: LiveDeliver) -> Listening:
        name = self._channel(channel)
        self._start()
        listeners = self._listeners.setdefault(name, [])
        listeners.append(deliver)
        confirmed = self._confirmed.setdefault(name, asyncio.Event())
        if len(listeners) == 1 and self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                # Failing here, the reader fails too and resubscribes every channel.
                async with asyncio.timeout(self._timeout_s):
                    await self._subscribe(self._pubsub, [name])
        # From now on, as the contract says (until then the subscriber's store read covers it).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout_s):
                await confirmed.wait()

        async def stop() -> None:
            found = self._listeners.get(name, [])
            if deliver in found:
                found.remove(deliver)
            if found or name not in self._listeners:
                return
            del self._listeners[name]
            self._confirmed.pop(name, None)
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    unsubscribe = (
                        self._pubsub.punsubscribe
                        if name.endswith("*")
                        else self._pubsub.unsubscribe
                    )
                    async with asyncio.timeout(self._timeout_s):
                        await unsubscribe(name)

        return Listening(stop)

    def _start(self) -> None:
        if not self._tasks and not self._closed:
            self._tasks = [
                asyncio.create_task(self._publish_loop(), name="live-publish"),
                asyncio.create_task(self._listen_loop(), name="live-listen"),
            ]

    async def _publish_loop(self) -> None:
        failing = False
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await self._publish_all(batch)
                    failing = False
                except (RedisError, OSError, TimeoutError) as e:
                    self.dropped += len(batch)
                    if not failing:
                        log.warning(
                            "live feed: Redis did not take %d announcements: %r", len(batch), e
                        )
                    failing = True
                    await self._publishers.move_on(self._timeout_s)

    async def _publish_all(self, batch: list[tuple[str, bytes]]) -> None:
        """One script call publishes the batch, in order (loaded again after a SCRIPT FLUSH,
        a restart or a failover to a node that never ran it)."""
        client = self._publishers.client
        args = [item for pair in batch for item in pair]
        try:
            await client.evalsha(_PUBLISH_ALL.sha, 0, *args)
        except NoScriptError:
            await client.script_load(_PUBLISH_ALL.source)
            await client.evalsha(_PUBLISH_ALL.sha, 0, *args)

    async def _subscribe(self, pubsub: PubSub, names: Sequence[str]) -> None:
        channels = [n for n in names if not n.endswith("*")]
        patterns = [n for n in names if n.endswith("*")]
        if channels:
            await pubsub.subscribe(*channels)
        if patterns:
            await pubsub.psubscribe(*patterns)

    async def _listen_loop(self) -> None:
        # Its own pause, not a stamina Backoff: the waits start over once a connection has
        # subscribed, in the middle of what would be one try (workers.retries).
        backoff_s = 0.05
        lost = False
        while not self._closed:
            pubsub = self._subscribers.client.pubsub()
            moving = False
            try:
                # A channel of our own keeps the connection subscribed with no listener.
                async with asyncio.timeout(self._timeout_s):
                    await self._subscribe(pubsub, [f"{self._prefix}hello"])
                for confirmed in self._confirmed.values():
                    confirmed.clear()
                self._pubsub = pubsub  # from here on, a new listener subscribes itself
                if self._listeners:
                    async with asyncio.timeout(self._timeout_s):
                        await self._subscribe(pubsub, list(self._listeners))
                if lost:
                    self._resync()  # resubscribed: what was stored meanwhile is in the store
                    self.reconnects += 1
                    lost = False
                backoff_s = 0.05
                await self._read_while_alive(pubsub)
            except (RedisError, OSError, TimeoutError) as e:
                if not lost:
                    log.warning("live feed: the subscriber connection failed: %r", e)
                lost = True
                self._pubsub = None
                self._resync()
                moving = True
            finally:
                self._pubsub = None
                await _close_quietly(pubsub, self._timeout_s)
                if moving:
                    await self._subscribers.move_on(self._timeout_s)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 2.0)

    async def _read_while_alive(self, pubsub: PubSub) -> None:
        """Read and dispatch until the connection fails or goes silent (raises)."""
        loop = asyncio.get_running_loop()
        self._heard_at = loop.time()
        reading = asyncio.create_task(self._read(pubsub, loop), name="live-read")
        keeping = asyncio.create_task(self._keep(pubsub, loop), name="live-keep")
        try:
            done, _ = await asyncio.wait((reading, keeping), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
        finally:
            for task in (reading, keeping):
                task.cancel()
            await asyncio.gather(reading, keeping, return_exceptions=True)

    async def _read(self, pubsub: PubSub, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)  # None: a health check's answer
            self._heard_at = loop.time()
            if message is not None:
                self._dispatch(message)

    async def _keep(self, pubsub: PubSub, loop: asyncio.AbstractEventLoop) -> None:
        """Ping a connection quiet for ``health_check_s``; raise TimeoutError when nothing comes
        back within as long again after the ping (a paused or cut-off Redis)."""
        interval = self._health_check_s
        while True:
            # Wake when the connection will have been quiet for the interval (a message heard
            # meanwhile moves that on): a ping is due then, never skipped by a timer's jitter.
            await asyncio.sleep(max(0.0, self._heard_at + interval - loop.time()))
            if loop.time() - self._heard_at < interval:
                continue
            pinged_at = loop.time()
            async with asyncio.timeout(self._timeout_s):
                await pubsub.ping()
            self.pings += 1
            await asyncio.sleep(interval)
            if self._heard_at < pinged_at:
                quiet_s = loop.time() - self._heard_at
                raise TimeoutError(
                    f"the subscriber connection was silent for {quiet_s:.1f} s, a ping unanswered"
                )

    def _dispatch(self, message: Mapping[str, object]) -> None:
        """One message as redis-py's (unannotated) ``get_message`` gives it: ``type``,
        ``pattern``, ``channel`` and ``data``."""
        kind = message.get("type")
        key = message.get("pattern") if kind == "pmessage" else message.get("channel")
        if key is None:
            return
        if kind in ("subscribe", "psubscribe"):
            confirmed = self._confirmed.get(key.decode() if isinstance(key, bytes) else str(key))
            if confirmed is not None:
                confirmed.set()
            return
        if kind not in ("message", "pmessage"):
            return
        name = key.decode() if isinstance(key, bytes) else str(key)
        listeners = self._listeners.get(name)
        if not listeners:
            return
        data = message["data"]
        try:
            if not isinstance(data, bytes | str):
                raise InvalidEnvelope("envelope", f"a {type(data).__name__}, not JSON text")
            event = decode(data)
        except InvalidEnvelope:
            log.warning("live feed: an announcement on %s is not an event envelope", name)
            return
        for deliver in tuple(listeners):
            try:
                deliver(event)
            except Exception:  # one listener's fault must not stop the feed for all
                log.exception("live feed: a listener of %s failed on an event", name)

    def _resync(self) -> None:
        self.resyncs += 1
        for listeners in tuple(self._listeners.values()):
            for deliver in tuple(listeners):
                deliver(None)

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        self._wake.set()  # a loop that missed its cancellation sees the feed closed
        self._listeners.clear()
        for nodes in (self._publishers, self._subscribers):
            await nodes.close(self._timeout_s)  # a read the cancellation missed fails now
        if self._tasks:
            done, _ = await asyncio.wait(self._tasks, timeout=self._timeout_s)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.warning("live feed: %s ended with %r", task.get_name(), task.exception())
        self._tasks = []


class _Nodes:
    """One side's client (publishing or listening), on one node at a time."""

    def __init__(self, nodes: list[Callable[[], Redis]], *, fast: bool = False) -> None:
        self._nodes = nodes
        self._at = 0
        self._fast = fast
        self.client = self._new(0)

    def _new(self, at: int) -> Redis:
        """The client of node ``at``; packed by hiredis when ``fast`` (no connection yet)."""
        client = self._nodes[at]()
        if self._fast:
            pool = client.connection_pool
            pool.connection_class = fast_packing(pool.connection_class)
        return client

    async def move_on(self, timeout_s: float) -> None:
        """After a failure: the next node's client (a cluster's next node; a lone server or a
        Sentinel master stays, its pool connecting anew, to the new master after a failover)."""
        if len(self._nodes) == 1:
            return
        left = self.client
        self._at = (self._at + 1) % len(self._nodes)
        self.client = self._new(self._at)
        await _close_quietly(left, timeout_s)

    async def close(self, timeout_s: float) -> None:
        await _close_quietly(self.client, timeout_s)


async def _close_quietly(connection: Redis | PubSub, timeout_s: float) -> None:
    """Close a client or a subscriber connection done with, within ``timeout_s``; what it
    raises is moot."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            await connection.aclose()
