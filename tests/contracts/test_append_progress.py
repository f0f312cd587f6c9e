"""How far the appender has decided the events topic (``AppendProgress``): one contract, on the
in-memory stream and on Kafka. A key's partition with no record is caught up at once; records
not yet decided hold it back until the bound (False, not an error); deciding past the end the
question found frees it, also while a caller waits; only the key's own partition counts; a key
that is not bytes is a TypeError; Kafka away is StreamUnavailable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.contracts.conftest import PARTITIONS, started_producer
from tests.kafka_topics import create_topic
from tests.waiting import within
from topics.errors import StreamUnavailable
from workers.adapters.kafka import KafkaAppendProgress, plain
from workers.adapters.memory import MemoryAppendProgress, MemoryProducer, partition_for
from workers.devtools.embedded import EmbeddedStack
from workers.ports import AppendProgress, Outgoing, Producer

BOUND_S = 0.3
"""How long a question waits where the answer is False: short, the appender never comes."""
WAIT_S = 30.0
"""The bound of a question whose answer is True: it returns as soon as it holds (Kafka lists a
new fleet's groups again only every ``GROUPS_RETRY_S``)."""


@dataclass
class Progressed:
    progress: AppendProgress
    producer: Producer
    topic: str
    decide: Callable[[int, int], Awaitable[None]]
    """(partition, offset): the appender has decided the partition up to ``offset`` (the next
    offset it has not decided), as its group's commit says on Kafka."""


@pytest.fixture(params=["memory", "kafka"])
async def p(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Progressed]:
    topic = f"{unique_name}.events"
    if request.param == "memory":
        producer = MemoryProducer(partitions={topic: PARTITIONS})
        memory = MemoryAppendProgress(producer, topic)

        async def decide_memory(partition: int, offset: int) -> None:
            memory.decided[partition] = offset

        yield Progressed(memory, producer, topic, decide_memory)
        return
    url = stack.urls.kafka_url
    await create_topic(url, topic, partitions=PARTITIONS)

    async def decide_kafka(partition: int, offset: int) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=url.removeprefix("kafka://"), group_id=f"{unique_name}-appender",
            enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            await consumer.commit({tp: offset})
        finally:
            await consumer.stop()

    progress = KafkaAppendProgress(
        plain(url), topic=topic, partitions=PARTITIONS, group_prefix=f"{unique_name}-"
    )
    async with started_producer(url, unique_name) as producer:
        try:
            yield Progressed(progress, producer, topic, decide_kafka)
        finally:
            await progress.stop()


def keys_on_two_partitions() -> tuple[bytes, bytes]:
    """Two aggregate keys whose records land on different partitions."""
    keys = [f"order:o{n}".encode() for n in range(50)]
    first = keys[0]
    other = next(
        k for k in keys if partition_for(k, PARTITIONS) != partition_for(first, PARTITIONS)
    )
    return first, other


async def produce(p: Progressed, key: bytes, count: int) -> int:
    """``count`` records of ``key``; the partition's end offset after them."""
    deliveries = [await p.producer.send(p.topic, Outgoing(key, b"e")) for _ in range(count)]
    return deliveries[-1].offset + 1


async def test_a_partition_never_written_is_caught_up_at_once(p: Progressed) -> None:
    key, _ = keys_on_two_partitions()
    assert await p.progress.caught_up(key, within_s=0) is True


async def test_undecided_records_hold_it_back_until_the_bound(p: Progressed) -> None:
    key, _ = keys_on_two_partitions()
    end = await produce(p, key, 3)
    assert await p.progress.caught_up(key, within_s=BOUND_S) is False
    await p.decide(partition_for(key, PARTITIONS), end - 1)  # one record still undecided
    assert await p.progress.caught_up(key, within_s=BOUND_S) is False
    await p.decide(partition_for(key, PARTITIONS), end)
    assert await p.progress.caught_up(key, within_s=WAIT_S) is True


async def test_only_the_keys_own_partition_counts(p: Progressed) -> None:
    key, other = keys_on_two_partitions()
    other_end = await produce(p, other, 2)
    await produce(p, key, 2)
    await p.decide(partition_for(other, PARTITIONS), other_end)
    assert await p.progress.caught_up(other, within_s=WAIT_S) is True
    assert await p.progress.caught_up(key, within_s=BOUND_S) is False


async def test_a_decision_while_a_caller_waits_ends_the_wait(p: Progressed) -> None:
    key, _ = keys_on_two_partitions()
    end = await produce(p, key, 2)
    waiting = asyncio.create_task(p.progress.caught_up(key, within_s=WAIT_S))
    await p.decide(partition_for(key, PARTITIONS), end)
    assert await within(waiting, timeout_s=WAIT_S * 2, what="the wait to end") is True


async def test_records_after_the_question_are_not_waited_for(p: Progressed) -> None:
    """The end is read once per question: what arrives later belongs to the next one."""
    key, _ = keys_on_two_partitions()
    end = await produce(p, key, 1)
    await p.decide(partition_for(key, PARTITIONS), end)
    assert await p.progress.caught_up(key, within_s=WAIT_S) is True
    await produce(p, key, 1)
    assert await p.progress.caught_up(key, within_s=BOUND_S) is False  # a new question


async def test_a_key_that_is_not_bytes_is_refused(p: Progressed) -> None:
    with pytest.raises(TypeError, match="bytes"):
        await p.progress.caught_up("order:o1", within_s=0)  # type: ignore[arg-type]


async def test_kafka_away_is_stream_unavailable(stack: EmbeddedStack) -> None:
    """Memory: taken down; Kafka: a broker of its own, paused; both answer again after."""
    memory = MemoryAppendProgress(MemoryProducer(partitions={"t": 1}), "t")
    memory.down()
    with pytest.raises(StreamUnavailable):
        await memory.caught_up(b"k", within_s=0)
    memory.up()
    assert await memory.caught_up(b"k", within_s=0) is True
    own = EmbeddedStack(mongo_url=stack.urls.mongo_url, redis_url=stack.urls.redis_url)
    async with own:
        await create_topic(own.urls.kafka_url, "away", partitions=1)
        progress = KafkaAppendProgress(
            plain(own.urls.kafka_url, timeout_ms=3000), topic="away", partitions=1,
            group_prefix="away-",
        )  # fmt: skip
        try:
            assert await progress.caught_up(b"k", within_s=0) is True
            own.process("kafka").pause()
            try:
                with pytest.raises(StreamUnavailable, match="appender"):
                    await progress.caught_up(b"k", within_s=0)
            finally:
                own.process("kafka").resume()
            assert await progress.caught_up(b"k", within_s=0) is True  # it reconnects
        finally:
            await progress.stop()
