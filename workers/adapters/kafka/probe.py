"""The log's word on a produce that was never answered: did a record of the event land?

A produce answered ``outcome_unknown`` may still be written while the producer holds it
(aiokafka sends a batch, and may send it once more, until its request timeout has run out
since the batch was made; the answer came 1.5 timeouts after the send), and a request that
reached a stalled broker is applied whenever the broker runs again, however long it stalled.
So absence is read in two steps: the partition is read to the end the broker gives now
(the broker answers: it runs), then, after a grace in which a running broker takes every
request it had already received, to the end a new fetch gives. A record of the event that
is not in that end was never taken and never will be: the producer stopped sending it before
the first read, and the broker had no copy of it left to apply.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from topics.errors import StreamUnavailable
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.partitions import partition_for
from workers.ports import Delivery

log = logging.getLogger(__name__)

SKEW = timedelta(minutes=5)
"""How far another process's clock (the record's timestamp is its producer's) may be behind."""


class KafkaLogProbe:
    """Reads one key's partition for one event (``LogProbe``); a consumer per call, no group."""

    def __init__(self, kafka: KafkaConfig, *, grace_s: float | None = None) -> None:
        self._kafka = kafka
        self._timeout_s = kafka.timeout_ms / 1000
        self._grace_s = max(1.0, self._timeout_s) if grace_s is None else grace_s

    def delivery_bound_s(self) -> float | None:
        """The answer came 1.5 timeouts after the send; a batch made then is sent at most
        until its timeout ran out (one behind another partition's request waits for that one:
        a timeout more), and its last request is dropped a timeout after it was written:
        3 timeouts after the answer, and a second for the reconnections between."""
        if self._kafka.idempotence:
            return None  # aiokafka never expires an idempotent batch: it retries until acked
        return 3 * self._timeout_s + 1.0

    async def find(
        self, topic: str, key: bytes, event_id: str, *, since: datetime
    ) -> Delivery | None:
        wanted = event_id.encode()
        budget = self._grace_s + 4 * self._timeout_s + 2  # a frozen broker: unknown, in time
        try:
            async with asyncio.timeout(budget):
                partition, start = await self._first(topic, key, since)
                found, end = await self._scan(topic, partition, start, wanted)
                if found is not None:
                    return found
                await asyncio.sleep(self._grace_s)  # the broker's own time to take what it holds
                found, _ = await self._scan(topic, partition, end, wanted)
                return found
        except (TimeoutError, KafkaError, OSError) as e:
            raise StreamUnavailable(
                f"Kafka did not let {topic} be read for event {event_id}: {e!r}; the outcome "
                "stays unknown until it does."
            ) from e

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **self._kafka.client_kwargs(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )

    async def _first(self, topic: str, key: bytes, since: datetime) -> tuple[int, int]:
        """The key's partition and the first offset to read: the first record stamped at or
        after ``since`` less the clocks' skew, or the log's start if the broker cannot say."""
        consumer = self._consumer()
        try:
            await consumer.start()
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer.topics()
                partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise StreamUnavailable(f"Kafka does not know the topic {topic}.")
            tp = TopicPartition(topic, partition_for(key, len(partitions)))
            at = int((since - SKEW).timestamp() * 1000)
            # The end first: a record landing after it is at or past it, whenever it lands.
            end = (await consumer.end_offsets([tp]))[tp]
            try:
                found = (await consumer.offsets_for_times({tp: at})).get(tp)
            except KafkaError as e:  # a broker without timestamp lookups: from the start
                log.info("offsets by time on %s not answered (%r): read from the start", tp, e)
                found = None
                start = (await consumer.beginning_offsets([tp]))[tp]
            else:
                if found is None or found.timestamp < 0:
                    # Nothing stamped since (Tansu answers offset 0 and timestamp -1): read
                    # from the end taken before (Tansu's lags behind: more read, never less).
                    start = end
                else:
                    start = found.offset
            return tp.partition, start
        finally:
            await _stop(consumer)

    async def _scan(
        self, topic: str, partition: int, start: int, wanted: bytes
    ) -> tuple[Delivery | None, int]:
        """Read from ``start`` to the end this consumer's first fetch reports: the delivery of
        ``wanted``'s record, or None and the offset reached."""
        consumer = self._consumer()
        tp = TopicPartition(topic, partition)
        try:
            await consumer.start()
            consumer.assign([tp])
            consumer.seek(tp, start)
            while True:
                batches = await consumer.getmany(tp, timeout_ms=200)
                for record in batches.get(tp, ()):
                    if any(k == "event_id" and bytes(v) == wanted for k, v in record.headers or ()):
                        return Delivery(topic, partition, record.offset), record.offset + 1
                highwater = consumer.highwater(tp)
                position = await consumer.position(tp)
                if highwater is not None and position >= highwater:
                    return None, position
        finally:
            await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    await close_quietly(consumer.stop, timeout_s=5, what="log probe")
