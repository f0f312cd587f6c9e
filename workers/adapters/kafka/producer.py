"""Kafka producing and topic administration with every call bounded (aiokafka#1101)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata

from topics.errors import StreamOutcomeUnknown, StreamUnavailable
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.kafka.deadlines import SharedDeadlines
from workers.adapters.partitions import CachedPartitioner
from workers.ports import Delivery, Outgoing
from workers.secrets import redact

log = logging.getLogger(__name__)


class KafkaProducer:
    """One acks=all producer per process; a send either is acknowledged or raises in time."""

    def __init__(
        self,
        kafka: KafkaConfig,
        *,
        client_id: str = "eventfleet",
        max_event_bytes: int = 1024 * 1024,
    ) -> None:
        self._kafka = kafka
        self._timeout_s = kafka.timeout_ms / 1000
        self._partitioner = CachedPartitioner()
        # A record not acknowledged within request_timeout_ms fails inside aiokafka, but it
        # may already sit in a stalled broker's socket and be appended when it resumes: once
        # handed over, a failure is an unknown outcome (StreamOutcomeUnknown), never "not sent".
        self._producer = AIOKafkaProducer(
            **kafka.client_kwargs(),
            client_id=client_id,
            acks="all",
            enable_idempotence=kafka.idempotence,
            linger_ms=0,
            partitioner=self._partitioner,
            max_request_size=max(max_event_bytes * 2, 1024 * 1024),
        )
        self._started = False
        self._deadlines = SharedDeadlines(self._timeout_s * 1.5)

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                await self._producer.start()
        except Exception as e:  # aiokafka also raises KeyError on a refused SCRAM login
            # (the server's "e=unknown-user" final message); every failure here means the same.
            await self.stop()
            log.warning("Kafka producer start failed: %s", redact(repr(e)))
            raise StreamUnavailable(
                f"the Kafka producer could not connect to {self._kafka.describe()}; "
                "check that the brokers answer and the security settings match theirs."
            ) from e
        self._started = True

    async def stop(self) -> None:
        # Stopping must not hang while Kafka is down; unsent records fail.
        await close_quietly(self._producer.stop, timeout_s=self._timeout_s, what="producer")
        self._started = False

    async def ping(self) -> None:
        """One metadata round trip to the brokers (the caller bounds it)."""
        if not self._started:
            raise StreamUnavailable("the Kafka producer is not running")
        await self._producer.client.fetch_all_metadata()

    async def settled(self) -> None:
        """Returns once every record handed over is acknowledged or failed, so none can still
        land from this producer: aiokafka fails a batch ``request_timeout_ms`` after it was
        made, or retries it until then (a retry may land after the send that raised
        StreamOutcomeUnknown gave up). StreamUnavailable if that takes over 3 timeouts."""
        if not self._started:
            return
        try:
            async with asyncio.timeout(self._timeout_s * 3):
                await asyncio.shield(self._producer.flush())
        except TimeoutError as e:
            raise StreamUnavailable(
                f"records handed to Kafka were neither acknowledged nor failed within "
                f"{self._timeout_s * 3:g} s; check that the brokers at "
                f"{self._kafka.describe()} answer."
            ) from e

    async def send(
        self, topic: str, message: Outgoing, *, partition: int | None = None
    ) -> Delivery:
        """Produce one record: StreamUnavailable if it was not handed over, else the ack or
        StreamOutcomeUnknown, within 1.5 timeouts (the hot path of every command).

        With the topic's metadata known, handing over cannot wait on the brokers (only on a
        full buffer, which aiokafka bounds by request_timeout_ms itself), and the ack is
        awaited through a future of our own that the shared deadlines fail in time: no
        timeout context and no shield per record. The first record of a topic, or one sent to
        a chosen partition, takes the fully guarded way.
        """
        if not self._started:
            raise StreamUnavailable("the Kafka producer is not running.")
        if (
            partition is not None
            or self._producer.client.cluster.partitions_for_topic(topic) is None
        ):
            return await self._send_guarded(topic, message, partition)
        handed = False
        try:
            future = await self._producer.send(
                topic, value=message.value, key=message.key, headers=list(message.headers)
            )
            handed = True
            metadata = await self._deadlines.wait(future)
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._failure(topic, e, handed=handed) from e
        return Delivery(topic=metadata.topic, partition=metadata.partition, offset=metadata.offset)

    async def _send_guarded(self, topic: str, message: Outgoing, partition: int | None) -> Delivery:
        handed = False
        try:
            async with asyncio.timeout(self._timeout_s * 1.5):
                if partition is not None:
                    await self._check_partition(topic, partition)
                future = await self._producer.send(
                    topic,
                    value=message.value,
                    key=message.key,
                    headers=list(message.headers),
                    partition=partition,
                )
                handed = True
                # Shielded: a timeout must not cancel the record inside aiokafka.
                metadata = await asyncio.shield(future)
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._failure(topic, e, handed=handed) from e
        return Delivery(topic=metadata.topic, partition=metadata.partition, offset=metadata.offset)

    async def send_many(self, topic: str, messages: Sequence[Outgoing]) -> list[Delivery]:
        """Produce many records, keeping their order per key, and wait for every ack.

        Records are packed into one aiokafka batch per partition (more when one fills), not
        sent one by one: a record costs an append to a batch instead of a ``send`` with its
        own metadata wait, future and accumulator call (the appender's publishing was ~16% of
        its CPU). Every record is checked first: one that is not bytes raises TypeError and
        nothing is sent. One timeout bounds the whole call. StreamUnavailable if no batch was
        handed over; StreamOutcomeUnknown once any was (it may be appended).
        """
        if not self._started:
            raise StreamUnavailable("the Kafka producer is not running.")
        if not messages:
            return []
        for message in messages:
            message.check_bytes()
        producer = self._producer
        sent: list[
            tuple[int, list[int], asyncio.Future[RecordMetadata]]
        ] = []  # partition, indices, ack
        try:
            async with asyncio.timeout(self._timeout_s * 1.5):
                await producer.client._wait_on_metadata(topic)
                partitions = sorted(producer.client.cluster.partitions_for_topic(topic))
                hashed = self._partitioner.hash
                by_partition: dict[int, list[int]] = {}
                for i, message in enumerate(messages):
                    key = message.key
                    if key is None:
                        partition = producer._partition(
                            topic, None, key, message.value, key, message.value
                        )
                    else:  # what the partitioner answers, without aiokafka's lists per record
                        partition = partitions[hashed(key) % len(partitions)]
                    by_partition.setdefault(partition, []).append(i)
                for partition, indices in by_partition.items():
                    batch = producer.create_batch()
                    taken: list[int] = []
                    for i in indices:
                        m = messages[i]
                        headers = list(m.headers)
                        if (
                            batch.append(key=m.key, value=m.value, timestamp=None, headers=headers)
                            is None
                        ):
                            sent.append(
                                (partition, taken, await self._send_batch(batch, topic, partition))
                            )
                            batch, taken = producer.create_batch(), []
                            # An empty batch takes any one record, whatever its size.
                            batch.append(key=m.key, value=m.value, timestamp=None, headers=headers)
                        taken.append(i)
                    sent.append((partition, taken, await self._send_batch(batch, topic, partition)))
                # Shielded: a timeout must not cancel records inside aiokafka.
                acks = await asyncio.shield(asyncio.gather(*(ack for _, _, ack in sent)))
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._failure(topic, e, handed=bool(sent)) from e
        deliveries: dict[int, Delivery] = {}
        for (partition, taken, _), metadata in zip(sent, acks, strict=True):
            for position, i in enumerate(taken):  # a batch's records take consecutive offsets
                deliveries[i] = Delivery(topic, partition, metadata.offset + position)
        return [deliveries[i] for i in range(len(messages))]  # every message is in one batch

    async def _send_batch(
        self, batch: BatchBuilder, topic: str, partition: int
    ) -> asyncio.Future[RecordMetadata]:
        batch.close()
        ack: asyncio.Future[RecordMetadata] = await self._producer.send_batch(
            batch, topic, partition=partition
        )
        return ack

    def _failure(self, topic: str, error: BaseException, *, handed: bool) -> StreamUnavailable:
        log.debug("Kafka error on %s: %r", topic, error)
        if handed:
            return StreamOutcomeUnknown(
                f"Kafka did not acknowledge a record for {topic} within "
                f"{self._timeout_s * 1.5:g} s; it may still be appended."
            )
        return StreamUnavailable(f"Kafka did not take a record for {topic}; nothing was sent.")

    async def _check_partition(self, topic: str, partition: int) -> None:
        # aiokafka only asserts this (gone under python -O); say it in a sentence instead.
        known = await self._producer.partitions_for(topic)
        if partition not in known:
            raise ValueError(
                f"{topic} has partitions 0 to {len(known) - 1}; there is no partition {partition}"
            )
