"""Where a group stands and which offsets hold records (``Positions``): one contract, on the
in-memory stream and on Kafka. A group that never committed stands nowhere (None); a commit is
read back as given; a partition starts at 0 here; a range's offsets are exactly the records in
it; an empty or inverted range holds none; Kafka away is StreamUnavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.contracts.conftest import PARTITIONS, started_producer
from tests.kafka_topics import create_topic
from topics.errors import StreamUnavailable
from workers.adapters.kafka import KafkaPositions, plain
from workers.adapters.memory import MemoryPositions, MemoryProducer
from workers.devtools.embedded import EmbeddedStack
from workers.ports import Outgoing, Positions, Producer


@dataclass
class Positioned:
    positions: Positions
    producer: Producer
    topic: str
    commit: Callable[[str, int, int], Awaitable[None]]
    """(group, partition, offset): the group commits ``offset`` as the next it reads."""


@pytest.fixture(params=["memory", "kafka"])
async def p(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Positioned]:
    topic = f"{unique_name}.positions"
    if request.param == "memory":
        producer = MemoryProducer(partitions={topic: PARTITIONS})
        memory = MemoryPositions(producer)

        async def commit_memory(group: str, partition: int, offset: int) -> None:
            memory.commit(group, topic, partition, offset)

        yield Positioned(memory, producer, topic, commit_memory)
        return
    url = stack.urls.kafka_url
    await create_topic(url, topic, partitions=PARTITIONS)

    async def commit_kafka(group: str, partition: int, offset: int) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=url.removeprefix("kafka://"), group_id=group,
            enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            await consumer.commit({tp: offset})
        finally:
            await consumer.stop()

    positions = KafkaPositions(plain(url), fetch_max_wait_ms=10)
    async with started_producer(url, unique_name) as producer:
        try:
            yield Positioned(positions, producer, topic, commit_kafka)
        finally:
            await positions.stop()


async def fill(p: Positioned, partition: int, count: int) -> None:
    for n in range(count):
        await p.producer.send(p.topic, Outgoing(b"k", f"v{n}".encode()), partition=partition)


async def test_a_group_stands_where_it_committed_and_nowhere_before(p: Positioned) -> None:
    await fill(p, 0, 4)
    assert await p.positions.committed("never", p.topic, [0, 1]) == {0: None, 1: None}
    await p.commit("readers", 0, 3)
    assert await p.positions.committed("readers", p.topic, [0, 1]) == {0: 3, 1: None}


async def test_a_partition_starts_at_its_first_offset(p: Positioned) -> None:
    await fill(p, 1, 2)
    assert await p.positions.earliest(p.topic, [0, 1]) == {0: 0, 1: 0}


async def test_a_range_holds_exactly_the_records_in_it(p: Positioned) -> None:
    await fill(p, 2, 6)
    assert await p.positions.offsets_between(p.topic, 2, 1, 4) == [1, 2, 3]
    assert await p.positions.offsets_between(p.topic, 2, 4, 99) == [4, 5]  # up to the end
    assert await p.positions.offsets_between(p.topic, 2, 3, 3) == []
    assert await p.positions.offsets_between(p.topic, 2, 5, 2) == []
    assert await p.positions.offsets_between(p.topic, 0, 0, 5) == []  # an empty partition


async def test_kafka_away_is_stream_unavailable(stack: EmbeddedStack) -> None:
    """Memory: taken down; Kafka: a broker of its own, paused."""
    memory = MemoryPositions(MemoryProducer())
    memory.down()
    with pytest.raises(StreamUnavailable):
        await memory.committed("g", "t", [0])
    own = EmbeddedStack(mongo_url=stack.urls.mongo_url, redis_url=stack.urls.redis_url)
    async with own:
        await create_topic(own.urls.kafka_url, "away", partitions=1)
        positions = KafkaPositions(plain(own.urls.kafka_url, timeout_ms=500), fetch_max_wait_ms=10)
        try:
            assert await positions.earliest("away", [0]) == {0: 0}
            own.process("kafka").pause()
            try:
                for call in (
                    positions.committed("g", "away", [0]),
                    positions.offsets_between("away", 0, 0, 5),
                ):
                    with pytest.raises(StreamUnavailable):
                        await call
            finally:
                own.process("kafka").resume()
            assert await positions.committed("g", "away", [0]) == {0: None}  # it reconnects
        finally:
            await positions.stop()
