"""Topics in tests, through the fleet's own Kafka adapter: create one, read one to its end or wait,
count what was ever produced to one; and produce to one as a client of its own would (events as a
direct producer sends them, any bytes as a broken or foreign one does)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from topics.catalog import TopicSpec
from topics.envelope import Event, decode, encode, kafka_headers, new_event
from workers.adapters.kafka import ensure_topics, plain, read_topic
from workers.ports import Record


async def create_topic(kafka_url: str, topic: str, *, partitions: int) -> None:
    """Topic ``topic`` with ``partitions`` partitions, replication 1 (fine if it exists)."""
    await ensure_topics(plain(kafka_url), [TopicSpec(topic, partitions, 1)])


async def read_records(kafka_url: str, topic: str, *, timeout_s: float = 10.0) -> list[Record]:
    """Every record of ``topic`` up to its current end, by partition then offset."""
    records = await read_topic(plain(kafka_url), topic, timeout_s=timeout_s)
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def read_events(kafka_url: str, topic: str) -> list[Event]:
    """Every event on ``topic`` up to its current end, decoded, in the order read."""
    return [decode(record.value) for record in await read_topic(plain(kafka_url), topic)]


async def read_until(
    kafka_url: str,
    topic: str,
    *,
    expect: int,
    where: Callable[[Record], bool] = lambda record: True,
    timeout_s: float = 30,
    settle_s: float = 0.5,
) -> list[Record]:
    """The topic from its start once ``expect`` of its records match ``where``, read again
    after ``settle_s`` (so a record too many shows); what it holds at ``timeout_s`` if it
    never gets there. On a topic other tests share, ``where`` picks this test's records:
    counting every record would return before this test's own have all arrived."""
    deadline = time.monotonic() + timeout_s

    async def matching() -> tuple[list[Record], int]:
        records = await read_topic(plain(kafka_url), topic, timeout_s=timeout_s)
        return records, sum(1 for record in records if where(record))

    records, found = await matching()
    while found < expect and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        records, found = await matching()
    if found >= expect:
        await asyncio.sleep(settle_s)
        records, _ = await matching()
    return records


async def produced_to(consumer: AIOKafkaConsumer, topic: str) -> int | None:
    """How many records were ever produced to ``topic`` (the sum of its end offsets), asked
    through a started ``consumer``; None while Kafka knows no partition of it."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer.topics()  # refresh the metadata once
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        return None
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    return sum(ends.values())


async def produce_events(
    kafka_url: str, topic: str, events: list[tuple[str, str, str, dict[str, Any]]]
) -> list[str]:
    """Produce ``(aggregate type, id, event type, data)`` requests as a direct producer would."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_url.removeprefix("kafka://"), acks="all")
    await producer.start()
    try:
        made = [new_event(t, i, kind, data) for t, i, kind, data in events]
        for event in made:
            await producer.send_and_wait(
                topic, encode(event), key=event.key, headers=kafka_headers(event)
            )
    finally:
        await producer.stop()
    return [event.id for event in made]


async def produce_raw(
    kafka_url: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]]],
) -> None:
    """Records as a broken or foreign producer writes them: any bytes, any headers."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_url.removeprefix("kafka://"), acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=list(headers))
    finally:
        await producer.stop()
