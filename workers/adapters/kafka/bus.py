"""The Kafka event bus on the fleet's own ``events.stored`` topic, one consumer group per
subscription.

Guarantee: at-least-once, durable -- an offset is committed only after the handler succeeded or the
event was dead-lettered.

``publish`` produces to ``events.stored`` through ``KafkaProducer`` (keyed
by aggregate, so each aggregate keeps its order). Each subscription is its own consumer
group ``<group_id>-bus-<durable>`` (a fresh one per call when ``durable`` is None) in
its own task, so a slow or failing handler delays only its own subscription. A failing
handler is retried in place with exponential backoff (``RetryPolicy``, which keeps the
order per partition); after ``max_attempts`` runs the record goes to the dead-letter
topic (the fleet's ``events.dlq`` unless given) with the usual ``dlq_*`` headers and its
offset is committed. Offsets are committed after each partition's batch, and on
cancel and rebalance for what was handled; a crash in between redelivers those events.

Handlers may see an event more than once: they must be idempotent by event id. A new
group starts at the topic's end: ``subscribe`` returns once the group has its
partitions, so it sees every event published after that; a durable group resumes
from its committed offsets, also after ``cancel`` or a restart. Keep a handler's
retries (``max_attempts`` x ``max_backoff_ms``) well under ``max.poll.interval.ms``
(5 minutes), or the group evicts the consumer and rebalances: uncommitted events come again.
A group made without a durable name is left to the broker, which drops its offsets
after ``offsets.retention.minutes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from topics.catalog import TopicNames
from topics.envelope import Event
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig, plain
from workers.adapters.kafka.producer import KafkaProducer
from workers.bus.common import (
    BusUnavailable,
    Delivery,
    ReadLoop,
    Subscriptions,
    bounded,
    require_stored,
)
from workers.bus.policies import RetryPolicy
from workers.ports import Handler, Outgoing, Record, Subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KafkaBusOptions:
    """How the bus's consumer groups are named and behave (the fleet's settings by default)."""

    group_id: str = "eventfleet"
    topic_prefix: str = "eventfleet."
    session_timeout_ms: int = 10_000
    fetch_max_wait_ms: int = 100


def _record(record: ConsumerRecord[bytes, bytes]) -> Record:
    return Record(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value or b"",
        tuple(record.headers),
    )


class KafkaEventBus:
    """Produces to ``events.stored``; each subscription reads it as its own consumer group."""

    def __init__(
        self,
        kafka: KafkaConfig | str,
        *,
        options: KafkaBusOptions | None = None,
        topic: str | None = None,
        dead_letter_topic: str | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
    ) -> None:
        # From a bare bootstrap (``kafka://h:p`` or ``h:p,h2:p``) the producer is not
        # idempotent, which every broker accepts; handlers dedupe by event id in any case.
        self.kafka = plain(kafka) if isinstance(kafka, str) else kafka
        self.options = options or KafkaBusOptions()
        names = TopicNames(self.options.topic_prefix)
        self.topic = topic or names.stored
        self.dead_letter_topic = dead_letter_topic or names.dlq
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.timeout_s = self.kafka.timeout_ms / 1000
        self.producer = KafkaProducer(self.kafka, client_id="eventfleet-bus")
        self._producer_started = False
        self._lock = asyncio.Lock()
        self._subscriptions = Subscriptions(f"Kafka event bus on {self.topic}")

    async def started_producer(self) -> KafkaProducer:
        self._subscriptions.check_open()
        async with self._lock:
            if not self._producer_started:
                await self.producer.start()  # raises StreamUnavailable in time
                self._producer_started = True
        return self.producer

    async def publish(self, event: Event) -> None:
        """Produce ``event`` and wait for acks=all; raises StreamUnavailable when Kafka does not
        ack."""
        require_stored(event)
        producer = await self.started_producer()
        await producer.send(self.topic, Outgoing.of(event))

    async def subscribe(
        self, event_type: str, handler: Handler, *, durable: str | None = None
    ) -> Subscription:
        """Deliver ``event_type`` events (``"*"``: all) to ``handler`` until cancelled.

        Returns once the group owns its partitions. With ``durable`` the group keeps
        its offsets: subscribing again under that name resumes after the last commit.
        """
        name = self._subscriptions.opening(event_type, durable)
        reader = _Reader(self, f"{self.options.group_id}-bus-{name}", event_type, handler)
        await reader.start()
        return self._subscriptions.added(reader)

    async def close(self) -> None:
        """Stop every subscription and the producer, each bounded by the Kafka timeout."""
        await self._subscriptions.close()
        if self._producer_started:
            await self.producer.stop()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's base is Any to mypy
    """Tells ``subscribe`` when the group joined; commits handled offsets before a revoke."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.joined = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.reader.commit()

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.joined.set()


class _Reader:
    """One subscription: a consumer group read by one consumer in a background task."""

    def __init__(self, bus: KafkaEventBus, group: str, event_type: str, handler: Handler) -> None:
        self.bus, self.group = bus, group
        self.where = f"kafka bus {bus.topic} group {group}"
        self.delivery = Delivery(event_type, handler, bus.retry, self.where)
        self.loop = ReadLoop(self.where, bus.retry)
        options = bus.options
        self.consumer = AIOKafkaConsumer(
            **bus.kafka.client_kwargs(),
            group_id=group,
            client_id=f"eventfleet-bus-{group}",
            enable_auto_commit=False,
            auto_offset_reset="latest",  # a new subscription sees what is published from now on
            session_timeout_ms=options.session_timeout_ms,
            heartbeat_interval_ms=max(options.session_timeout_ms // 6, 100),
            fetch_max_wait_ms=options.fetch_max_wait_ms,
        )
        self.listener = _Rebalance(self)
        self.handled: dict[TopicPartition, int] = {}  # next offset to commit, per partition

    async def start(self) -> None:
        join_s = 2 * self.bus.options.session_timeout_ms / 1000 + self.bus.timeout_s
        try:
            self.consumer.subscribe([self.bus.topic], listener=self.listener)
            await bounded(self.consumer.start(), self.bus.timeout_s * 2)
            await bounded(self.listener.joined.wait(), join_s)
            # Fix the starting offsets now and commit them: events published after
            # subscribe() are then seen, even by a durable group that rejoins later.
            positions = {
                tp: await bounded(self.consumer.position(tp), self.bus.timeout_s)
                for tp in self.consumer.assignment()
            }
            if positions:
                await bounded(self.consumer.commit(positions), self.bus.timeout_s)
        except (TimeoutError, KafkaError, OSError) as e:
            await self._stop_consumer()
            raise BusUnavailable(
                f"{self.where} could not join within {join_s:.0f} s: {e!r};"
                " check that Kafka answers and that the topic exists"
            ) from e
        self.loop.start(self.step, self._failed)

    async def stop(self) -> None:
        await self.loop.stop(self.bus.timeout_s)
        await self.commit()
        await self._stop_consumer()

    async def _stop_consumer(self) -> None:
        await close_quietly(self.consumer.stop, timeout_s=self.bus.timeout_s, what=self.where)

    async def _failed(self, e: Exception, failures: int) -> None:
        level = logging.WARNING if isinstance(e, KafkaError) else logging.ERROR
        log.log(level, "%s: consuming failed (%d in a row), retrying: %r", self.where, failures, e)

    async def step(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=1000, max_records=self.bus.batch_size)
        unhandled = {tp: records[0].offset for tp, records in batch.items() if records}
        try:
            for tp, records in batch.items():
                for record in records:
                    await self.handle(_record(record))
                    self.handled[tp] = unhandled[tp] = record.offset + 1
                del unhandled[tp]
                await self.commit()
        except BaseException:
            # The fetch position is past records we did not handle: go back for them.
            for tp, offset in unhandled.items():
                with contextlib.suppress(KafkaError, ValueError):  # e.g. revoked meanwhile
                    self.consumer.seek(tp, offset)
            raise

    async def handle(self, record: Record) -> None:
        kind = dict(record.headers).get("event_type")
        if kind is not None and not self.delivery.wants(kind.decode(errors="replace")):
            return  # not ours: skip without decoding
        what = f"{record.topic}/{record.partition}/{record.offset}"
        await self.delivery.deliver(record.value, partial(self._dead_letter, record), what=what)

    async def commit(self) -> None:
        """Commit what was handled; a failed commit only means those events come again."""
        offsets, self.handled = self.handled, {}
        if not offsets:
            return
        try:
            await bounded(self.consumer.commit(offsets), self.bus.timeout_s)
        except (TimeoutError, KafkaError, OSError) as e:
            log.warning(
                "%s: commit of %s failed, those events will be redelivered: %r",
                self.where,
                offsets,
                e,
            )

    async def _dead_letter(self, record: Record, reason: str, attempts: int) -> None:
        producer = await self.bus.started_producer()
        kind = "handler_failed" if reason.startswith("handler failed") else "undecodable"
        headers = [
            *record.headers,
            ("dlq_reason", kind.encode()),
            ("dlq_detail", reason.encode()[:1000]),
            ("dlq_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("dlq_role", f"bus:{self.group}".encode()),
            ("dlq_attempts", str(attempts).encode()),
        ]
        await producer.send(self.bus.dead_letter_topic, Outgoing(record.key, record.value, headers))
