"""The Redis event bus on Redis Streams, one consumer group per subscription.

Guarantee: at-least-once, durable -- an event is redelivered until its handler succeeds or is
dead-lettered.

Why Streams and not Pub/Sub: Pub/Sub forgets a message as soon as it is sent, so a
subscriber that is down, reconnecting or failing loses it. A stream keeps entries
(``XADD`` with an approximate ``MAXLEN`` bound), and a consumer group remembers what
each subscription has read and which entries it has not acknowledged yet.

How delivery works: ``publish`` appends to the stream. Each subscription is a consumer
group (``<group_prefix>.<durable>``; a fresh one per call when ``durable`` is None)
read with ``XREADGROUP`` and acknowledged with ``XACK`` once the handler succeeded. A
failing handler is retried in place with exponential backoff (``RetryPolicy``), which
keeps the subscription's order; after ``max_attempts`` runs the entry goes to the
dead-letter stream ``<stream>.dead`` (with the reason) and is acknowledged. Entries of a
consumer that died or was cancelled before acking are taken over with ``XAUTOCLAIM``
once idle for ``PullPolicy.redeliver_after_ms``, and their earlier deliveries count toward
``max_attempts``. So that time must exceed the time one read of ``PullPolicy.batch_size``
entries takes, retries included, or a process sharing the durable name runs them too.

Handlers may see an event more than once (redelivery after a crash, a takeover, a
republish): they must be idempotent by event id. A new group starts at the stream's
end: it sees events published after ``subscribe`` returned; a durable group resumes
where it stopped, also after ``cancel`` or a restart. Entries trimmed by ``MAXLEN``
before a stopped durable group came back are lost to it: size ``maxlen`` for the
longest outage. A group made without a durable name is destroyed on cancel;
one a crashed process left behind stays until someone runs ``XGROUP DESTROY``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TypeVar, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT

from topics.envelope import Event, encode
from topics.errors import Unavailable
from workers.adapters.redis.connect import RedisClient, connect_redis
from workers.bus.common import (
    BusError,
    BusUnavailable,
    Delivery,
    ReadLoop,
    Subscriptions,
    bounded,
    require_stored,
)
from workers.bus.policies import PullPolicy, RetryPolicy, require_positive
from workers.ports import Handler, Subscription

log = logging.getLogger(__name__)
T = TypeVar("T")
Entry = tuple[bytes, dict[bytes, bytes]]


class RedisEventBus:
    """Publishes to one Redis stream; each subscription reads it through its own consumer group.

    ``maxlen``: about how many entries the stream keeps (the oldest go first); ``retry``: how a
    failing handler is retried before its event is dead-lettered; ``pull``: how each
    subscription reads (batch, block, redelivery after); ``timeout_ms``: the bound of one call.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        stream: str = "eventfleet.events.stored",
        maxlen: int = 1_000_000,
        group_prefix: str = "eventfleet.bus",
        retry: RetryPolicy | None = None,
        pull: PullPolicy | None = None,
        timeout_ms: int = 2_000,
    ) -> None:
        require_positive("RedisEventBus", maxlen=maxlen)
        self.stream = stream
        self.dead_letter_stream = f"{stream}.dead"
        self.maxlen = maxlen
        self.group_prefix = group_prefix
        self.retry = retry or RetryPolicy()
        self.pull = pull or PullPolicy()
        self.timeout_s = timeout_ms / 1000
        # The socket timeout must outlast a blocking XREADGROUP, or idle reads would fail.
        # A server, a Sentinel-managed master or a Cluster, as the marker's URL may name.
        self.redis: RedisClient = connect_redis(
            redis_url, timeout_ms=timeout_ms, socket_timeout_ms=timeout_ms + self.pull.wait_ms
        )
        self._subscriptions = Subscriptions(f"Redis event bus on {stream}")

    async def call(self, what: str, call: Awaitable[T], *, extra_s: float = 0.0) -> T:
        """Await one Redis call within the timeout, translating driver errors once, here."""
        async with _translated(what):
            return await bounded(call, self.timeout_s + extra_s)

    async def publish(self, event: Event) -> None:
        """Append ``event`` to the stream; raises BusUnavailable when Redis does not answer."""
        self._subscriptions.check_open()
        require_stored(event)
        fields: dict[FieldT, EncodableT] = {"event": encode(event), "type": event.type}
        await self.call(
            f"publishing event {event.id} to stream {self.stream}",
            self.redis.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True),
        )

    async def subscribe(
        self, event_type: str, handler: Handler, *, durable: str | None = None
    ) -> Subscription:
        """Deliver ``event_type`` events (``"*"``: all) to ``handler`` until cancelled.

        With ``durable`` the consumer group outlives the subscription: subscribing again
        under the same name resumes after the last acknowledged event.
        """
        name = self._subscriptions.opening(event_type, durable)
        reader = _Reader(self, f"{self.group_prefix}.{name}", event_type, handler, durable is None)
        await reader.create_group()
        reader.start()
        return self._subscriptions.added(reader)

    async def close(self) -> None:
        """Stop every subscription and the connection pool, each bounded by the timeout."""
        await self._subscriptions.close()
        try:
            await bounded(self.redis.aclose(), self.timeout_s)
        except (TimeoutError, RedisError, OSError) as e:
            log.warning("closing the Redis bus connection failed: %r", e)


class _Reader:
    """One subscription: a consumer group read by one consumer in a background task."""

    def __init__(
        self, bus: RedisEventBus, group: str, event_type: str, handler: Handler, ephemeral: bool
    ) -> None:
        self.bus = bus
        self.group = group
        self.consumer = uuid.uuid4().hex
        self.ephemeral = ephemeral
        self.where = f"redis bus {bus.stream} group {group}"
        self.delivery = Delivery(event_type, handler, bus.retry, self.where)
        self.loop = ReadLoop(self.where, bus.retry)
        self.next_claim = 0.0

    async def create_group(self) -> None:
        try:
            await self.bus.call(
                f"creating consumer group {self.group}",
                self.bus.redis.xgroup_create(self.bus.stream, self.group, id="$", mkstream=True),
            )
        except BusError as e:
            if "BUSYGROUP" not in str(e):  # an existing group is the durable case: resume it
                raise

    def start(self) -> None:
        self.loop.start(self.step, self._failed)

    async def stop(self) -> None:
        await self.loop.stop(self.bus.timeout_s)
        redis = self.bus.redis
        try:
            if self.ephemeral:
                await self.bus.call(
                    "dropping a group", redis.xgroup_destroy(self.bus.stream, self.group)
                )
            elif not await self._has_pending():
                # Keep a consumer that still owns entries: deleting it would drop them.
                await self.bus.call(
                    "dropping a consumer",
                    redis.xgroup_delconsumer(self.bus.stream, self.group, self.consumer),
                )
        except (Unavailable, BusError) as e:
            log.warning("%s: cleanup after cancel failed: %s", self.where, e)

    async def _has_pending(self) -> bool:
        consumers = await self.bus.call(
            "listing consumers", self.bus.redis.xinfo_consumers(self.bus.stream, self.group)
        )
        return any(c["name"] == self.consumer.encode() and c["pending"] for c in consumers)

    async def _failed(self, e: Exception, failures: int) -> None:
        level = logging.WARNING if isinstance(e, Unavailable | BusError) else logging.ERROR
        log.log(level, "%s: read failed (%d in a row), retrying: %r", self.where, failures, e)
        if isinstance(e, BusError) and "NOGROUP" in str(e):
            await self._recreate_group()

    async def _recreate_group(self) -> None:
        """The stream or group was deleted under us: start over from its end."""
        try:
            await self.create_group()
        except (Unavailable, BusError) as e:
            log.warning("%s: re-creating the group failed: %s", self.where, e)

    async def step(self) -> None:
        if time.monotonic() >= self.next_claim:
            await self.reclaim()
            self.next_claim = time.monotonic() + self.bus.pull.redeliver_after_s / 2
        bus, pull = self.bus, self.bus.pull
        answered = await bus.call(
            f"reading group {self.group}",
            bus.redis.xreadgroup(
                self.group,
                self.consumer,
                {bus.stream: ">"},
                count=pull.batch_size,
                block=pull.wait_ms,
            ),
            extra_s=pull.wait_s,
        )
        # XREADGROUP's RESP2 reply without decode_responses: [(stream, [(id, {field: value})])],
        # or nil when the block ran out; redis-py types it as a union of every protocol's shape.
        reply = cast("list[tuple[bytes, list[Entry]]] | None", answered)
        for _stream, entries in reply or ():
            await self.handle_batch(entries, claimed=False)

    async def reclaim(self) -> None:
        """Take over entries another consumer of the group left unacknowledged for too long."""
        start: bytes | str = "0-0"
        while True:
            reply = await self.bus.call(
                f"claiming idle entries of group {self.group}",
                self.bus.redis.xautoclaim(
                    self.bus.stream,
                    self.group,
                    self.consumer,
                    min_idle_time=self.bus.pull.redeliver_after_ms,
                    start_id=start,
                    count=self.bus.pull.batch_size,
                ),
            )
            start, entries = reply[0], reply[1]
            await self.handle_batch(entries, claimed=True)
            if start in (b"0-0", "0-0"):
                return

    async def handle_batch(self, entries: Sequence[Entry], *, claimed: bool) -> None:
        skipped: list[bytes] = []
        for entry_id, fields in entries:
            kind = fields.get(b"type") if fields else None
            # A type that is not UTF-8 (a broken producer's) is no subscription's, as on Kafka;
            # a strict decode failed the whole read, and each reclaim took the entry up again.
            if fields is None or (
                kind is not None and not self.delivery.wants(kind.decode(errors="replace"))
            ):
                skipped.append(entry_id)  # trimmed away (Redis 6) or not ours: just ack it
                continue
            done = await self._earlier_deliveries(entry_id) if claimed else 0
            await self.handle(entry_id, fields, done)
        if skipped:
            await self._ack(*skipped)

    async def handle(self, entry_id: bytes, fields: dict[bytes, bytes], done: int) -> None:
        await self.delivery.deliver(
            fields.get(b"event", b""),
            partial(self._dead_letter, entry_id, fields),
            what=entry_id.decode(),
            done_attempts=done,
        )
        await self._ack(entry_id)

    async def _earlier_deliveries(self, entry_id: bytes) -> int:
        pending = await self.bus.call(
            "reading an entry's delivery count",
            self.bus.redis.xpending_range(self.bus.stream, self.group, entry_id, entry_id, 1),
        )
        # The claim itself counted as a delivery; the ones before it were real attempts.
        return max(int(pending[0]["times_delivered"]) - 1, 0) if pending else 0

    async def _ack(self, *entry_ids: bytes) -> None:
        await self.bus.call(
            "acknowledging entries", self.bus.redis.xack(self.bus.stream, self.group, *entry_ids)
        )

    async def _dead_letter(
        self, entry_id: bytes, fields: dict[bytes, bytes], reason: str, attempts: int
    ) -> None:
        record: dict[FieldT, EncodableT] = {
            "event": fields.get(b"event", b""),
            "reason": reason,
            "group": self.group,
            "entry_id": entry_id,
            "attempts": attempts,
        }
        await self.bus.call(
            f"dead-lettering entry {entry_id.decode()}",
            self.bus.redis.xadd(
                self.bus.dead_letter_stream, record, maxlen=self.bus.maxlen, approximate=True
            ),
        )


@asynccontextmanager
async def _translated(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError) as e:
        raise BusUnavailable(f"Redis did not answer while {what}: {e!r}") from e
    except ResponseError as e:
        raise BusError(f"Redis refused {what}: {e}") from e
    except RedisError as e:
        raise BusUnavailable(f"Redis failed while {what}: {e!r}") from e
