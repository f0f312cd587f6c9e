"""Reading a topic: whole, once, to the end it had when reading began (audits); or followed
from positions on, as records arrive (type subscriptions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from topics.errors import StreamUnavailable
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig
from workers.ports import Record, TopicWindow


def record_of(
    tp: TopicPartition, r: ConsumerRecord[bytes, bytes], *, stamped: bool = True
) -> Record:
    """A fetched aiokafka record as the fleet's ``Record`` (with its timestamp unless not
    ``stamped``)."""
    headers = tuple((k, bytes(v)) for k, v in (r.headers or ()))
    if not stamped:
        return Record(tp.topic, tp.partition, r.offset, r.key, r.value, headers)
    return Record(tp.topic, tp.partition, r.offset, r.key, r.value, headers, r.timestamp)


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, *, partition: int | None = None
) -> list[TopicPartition]:
    """The partitions of ``topic`` (or only ``partition``), in order; none for a topic Kafka does
    not know, even after one refresh of the metadata."""
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer.topics()  # refresh the metadata once
        partitions = consumer.partitions_for_topic(topic) or set()
    return [
        TopicPartition(topic, p) for p in sorted(partitions) if partition is None or p == partition
    ]


async def seek_after(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], after: Mapping[int, int]
) -> None:
    """Each partition at its offset in ``after``, or at its first kept offset."""
    for tp in tps:
        if tp.partition in after:
            consumer.seek(tp, after[tp.partition])
        else:
            await consumer.seek_to_beginning(tp)


def reading_consumer(kafka: KafkaConfig) -> AIOKafkaConsumer:
    """A consumer of no group that reads from a partition's first kept record, each fetch
    answered within 50 ms (what a read to the end or of a window asks of the broker)."""
    return AIOKafkaConsumer(
        **kafka.client_kwargs(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )


async def read_topic(kafka: KafkaConfig, topic: str, *, timeout_s: float = 30.0) -> list[Record]:
    """Every record of ``topic`` up to its end as first seen, partition by partition in order.

    A topic that does not exist reads as empty. Raises StreamUnavailable when Kafka does not
    answer, or when the end is not reached within ``timeout_s``.
    """
    consumer = reading_consumer(kafka)
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            tps = await topic_partitions(consumer, topic)
            if not tps:
                return []
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            records: list[Record] = []
            # The end is the high-water mark of the fetch responses: the embedded broker's
            # ListOffsets answer (end_offsets) lags behind records produced in batches.
            while [tp for tp in tps if not await at_end(consumer, tp)]:
                batches = await consumer.getmany(timeout_ms=200)
                records += [record_of(tp, r) for tp, batch in batches.items() for r in batch]
            return records
    except (TimeoutError, KafkaError, OSError) as e:
        raise StreamUnavailable(f"Kafka did not let {topic} be read to its end: {e!r}") from e
    finally:
        await _stop(consumer)


async def read_window(
    kafka: KafkaConfig,
    topic: str,
    *,
    limit: int,
    partition: int | None = None,
    before_offset: int | None = None,
    timeout_s: float = 10.0,
) -> list[TopicWindow]:
    """The newest ``limit`` records before ``before_offset`` (None: the end) of each partition
    (or only ``partition``): each partition is sought to its window and read to its top, so a
    page costs its own records, never the topic. No window for a partition the topic has not;
    StreamUnavailable when Kafka does not answer within ``timeout_s``."""
    if limit < 1:
        raise ValueError(f"read_window needs limit >= 1, got {limit}")
    consumer = reading_consumer(kafka)
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            tps = await topic_partitions(consumer, topic, partition=partition)
            if not tps:
                return []
            consumer.assign(tps)
            firsts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            # The embedded broker's ListOffsets answer (end_offsets) can lag the records: the
            # end is the high-water mark the fetches report; a cursor is taken as given.
            tops = {tp: ends[tp] if before_offset is None else before_offset for tp in tps}
            starts = {tp: max(firsts[tp], tops[tp] - limit) for tp in tps}
            for tp in tps:
                consumer.seek(tp, starts[tp])
            got: dict[TopicPartition, list[Record]] = {tp: [] for tp in tps}
            pending = list(tps)
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=200)
                for tp, batch in batches.items():
                    got[tp] += [record_of(tp, r) for r in batch]
                for tp in list(pending):
                    highwater = consumer.highwater(tp)
                    if highwater is None:
                        continue  # not fetched yet: the end is not known
                    ends[tp] = max(ends[tp], highwater)
                    if before_offset is None:
                        tops[tp] = ends[tp]
                    position = await consumer.position(tp)
                    if position >= min(tops[tp], ends[tp]):
                        pending.remove(tp)
            windows = []
            for tp in tps:
                top = min(tops[tp], ends[tp])
                shown = [r for r in got[tp] if r.offset < top][-limit:]
                start = max(firsts[tp], min(starts[tp], top), top - limit)
                windows.append(TopicWindow(tp.partition, firsts[tp], ends[tp], start, shown))
            return windows
    except (TimeoutError, KafkaError, OSError) as e:
        raise StreamUnavailable(f"Kafka did not let a window of {topic} be read: {e!r}") from e
    finally:
        await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    await close_quietly(consumer.stop, timeout_s=5, what="topic reader")


async def at_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    """Whether ``consumer`` has read ``tp`` to the high-water mark its fetches reported."""
    highwater = consumer.highwater(tp)
    return highwater is not None and await consumer.position(tp) >= highwater


async def follow_topic(
    kafka: KafkaConfig,
    topic: str,
    *,
    after: Mapping[int, int],
    idle_s: float,
    timeout_s: float = 30.0,
) -> AsyncIterator[list[Record]]:
    """Every record of ``topic`` from the offsets ``after`` names (others: the beginning), as
    they arrive; ``[]`` after ``idle_s`` without one. Assigned, never in a group: nothing is
    committed. StreamUnavailable when Kafka does not answer."""
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        try:
            async with asyncio.timeout(timeout_s):
                await consumer.start()
                tps = await topic_partitions(consumer, topic)
                consumer.assign(tps)
                await seek_after(consumer, tps, after)
        except (TimeoutError, KafkaError, OSError) as e:
            raise StreamUnavailable(f"Kafka did not let {topic} be followed: {e!r}") from e
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=int(idle_s * 1000))
            except (KafkaError, OSError) as e:
                raise StreamUnavailable(
                    f"Kafka stopped answering while following {topic}: {e!r}"
                ) from e
            records = [
                record_of(tp, r, stamped=False)
                for tp, batch in sorted(batches.items(), key=lambda item: item[0].partition)
                for r in batch
            ]
            yield records
    finally:
        await _stop(consumer)
