"""Following a topic from positions (``TopicTail``): one contract, on the in-memory stream and
on Kafka. Records come from the named offsets on (others from the beginning), each once, in
offset order per partition, those produced later as they arrive; a quiet interval yields []."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.contracts.conftest import PARTITIONS, started_producer
from tests.kafka_topics import create_topic
from workers.adapters.kafka import KafkaStream, plain
from workers.adapters.memory import MemoryStream
from workers.devtools.embedded import EmbeddedStack
from workers.ports import Outgoing, Producer, Record, TopicTail


@dataclass
class Tailed:
    tail: TopicTail
    producer: Producer
    topic: str


@pytest.fixture(params=["memory", "kafka"])
async def tailed(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Tailed]:
    topic = f"{unique_name}.tail"
    if request.param == "memory":
        stream = MemoryStream(partitions={topic: PARTITIONS})
        yield Tailed(stream, stream.produced, topic)
        return
    url = stack.urls.kafka_url
    await create_topic(url, topic, partitions=PARTITIONS)
    async with started_producer(url, unique_name) as producer:
        yield Tailed(KafkaStream(plain(url), max_event_bytes=1 << 20), producer, topic)


def keyed(n: int) -> Outgoing:
    return Outgoing(f"k{n % 5}".encode(), f"v{n}".encode())


async def take(follow: AsyncIterator[list[Record]], count: int) -> list[Record]:
    got: list[Record] = []
    for _ in range(200):  # bounded: each turn yields within idle_s
        got.extend(await anext(follow))
        if len(got) >= count:
            break
    return got


def by_partition(records: list[Record]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for r in records:
        found.setdefault(r.partition, []).append(r.offset)
    return found


async def test_records_before_and_after_arrive_once_in_offset_order(tailed: Tailed) -> None:
    await tailed.producer.send_many(tailed.topic, [keyed(n) for n in range(10)])
    follow = tailed.tail.follow(tailed.topic, after={}, idle_s=0.2)
    try:
        first = await take(follow, 10)
        await tailed.producer.send_many(tailed.topic, [keyed(n) for n in range(10, 15)])
        later = await take(follow, 5)
    finally:
        await follow.aclose()  # type: ignore[attr-defined]
    got = first + later
    assert sorted(r.value for r in got) == sorted(f"v{n}".encode() for n in range(15))
    for offsets in by_partition(got).values():
        assert offsets == list(range(len(offsets)))  # each once, in order, from the beginning


async def test_following_from_positions_skips_what_is_before_them(tailed: Tailed) -> None:
    deliveries = await tailed.producer.send_many(tailed.topic, [keyed(n) for n in range(10)])
    counts = {p: sum(1 for d in deliveries if d.partition == p) for p in range(PARTITIONS)}
    after = {p: 1 for p, n in counts.items() if n}  # skip the first record of each partition
    follow = tailed.tail.follow(tailed.topic, after=after, idle_s=0.2)
    try:
        got = await take(follow, 10 - len(after))
        quiet = await anext(follow)
    finally:
        await follow.aclose()  # type: ignore[attr-defined]
    assert quiet == []
    assert {p: offsets[0] for p, offsets in by_partition(got).items()} == after
    assert len(got) == 10 - len(after)
