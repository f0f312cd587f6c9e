"""The Producer contract: acknowledged records in order per key, on the partition Kafka hashes to."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2

from tests.waiting import within
from topics.errors import StreamUnavailable
from workers.adapters.kafka.producer import KafkaProducer
from workers.adapters.memory import MemoryProducer, partition_for
from workers.ports import Delivery, Outgoing

from .conftest import PARTITIONS, Topics


def kafka_partition(key: bytes) -> int:
    """aiokafka's default partitioner (the Java client's), computed by aiokafka itself."""
    return int(murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def message(key: str, n: int, **headers: bytes) -> Outgoing:
    return Outgoing(key.encode(), f"{key}#{n}".encode(), list(headers.items()))


async def test_records_keep_their_order_per_key_on_their_hashed_partition(
    topics: Topics,
) -> None:
    producer, topic = topics.producer, topics.topic
    keys = [f"order:o{i}" for i in range(12)]
    sent: list[tuple[Outgoing, Delivery]] = []
    for round in range(3):  # across calls of one caller, and within one call
        batch = [message(key, round) for key in keys]
        sent += zip(batch, await producer.send_many(topic, batch), strict=True)
        one = message(keys[round], 100 + round)
        sent.append((one, await producer.send(topic, one)))
    assert {kafka_partition(k.encode()) for k in keys} == set(range(PARTITIONS))
    for outgoing, delivery in sent:
        assert outgoing.key is not None
        assert delivery.topic == topic and delivery.partition == kafka_partition(outgoing.key)
    records = await topics.produced()
    assert [(r.partition, r.offset, r.value) for r in records] == sorted(
        (d.partition, d.offset, m.value) for m, d in sent
    )
    for partition in range(PARTITIONS):  # offsets are contiguous from 0, in sending order
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(len(offsets)))
    for key in keys:
        values = [r.value for r in records if r.key == key.encode()]
        assert values == [m.value for m, _ in sent if m.key == key.encode()]


def test_the_memory_partitioner_is_kafkas() -> None:
    for n in range(300):
        key = f"chat_room:r{n}-é".encode() * (n % 5)
        assert partition_for(key, 7) == (murmur2(key) & 0x7FFFFFFF) % 7


async def test_bytes_and_headers_arrive_exactly_as_given(topics: Topics) -> None:
    odd = Outgoing(
        b"\xff\x00key",
        b"",  # an empty value is a value
        [("event_id", b"\x00\x01"), ("dup", b"1"), ("dup", b"2"), ("empty", b"")],
    )
    delivery = await topics.producer.send(topics.topic, odd)
    [record] = await topics.produced()
    arrived = (record.topic, record.partition, record.offset, record.key, record.value)
    assert arrived == (topics.topic, delivery.partition, delivery.offset, odd.key, odd.value)
    assert record.headers == tuple(odd.headers)  # the broker's timestamp is its own, not compared


async def test_an_explicit_partition_is_used_and_checked(topics: Topics) -> None:
    producer, topic = topics.producer, topics.topic
    chosen = (kafka_partition(b"k") + 1) % PARTITIONS  # not where the key would hash to
    delivery = await producer.send(topic, Outgoing(b"k", b"v"), partition=chosen)
    assert delivery.partition == chosen
    for wrong in (PARTITIONS, -1):
        with pytest.raises(ValueError, match=f"there is no partition {wrong}"):
            await producer.send(topic, Outgoing(b"k", b"v"), partition=wrong)
    assert [(r.partition, r.value) for r in await topics.produced()] == [(chosen, b"v")]


async def test_keyless_records_land_on_some_partition(topics: Topics) -> None:
    deliveries = [await topics.producer.send(topics.topic, Outgoing(None, b"v")) for _ in range(4)]
    assert all(0 <= d.partition < PARTITIONS for d in deliveries)
    records = await topics.produced()
    assert len(records) == 4 and all(r.key is None for r in records)


async def test_nothing_to_send_is_no_call(topics: Topics) -> None:
    assert await topics.producer.send_many(topics.topic, []) == []
    assert await topics.produced() == []


async def test_what_is_not_bytes_is_refused_where_it_stands(topics: Topics) -> None:
    producer, topic = topics.producer, topics.topic
    text_value = Outgoing(b"k", "text")  # type: ignore[arg-type]
    text_header = Outgoing(b"k", b"v", [("h", "text")])  # type: ignore[list-item]
    for bad in (text_value, text_header):
        with pytest.raises(TypeError):
            await producer.send(topic, bad)
    # In a batch, one bad record anywhere sends nothing: not the records before it either.
    for bad in (text_value, text_header):
        with pytest.raises(TypeError):
            await producer.send_many(topic, [Outgoing(b"k", b"first"), Outgoing(b"j", b"2"), bad])
    delivery = await producer.send(topic, Outgoing(b"k", b"after"))
    assert [(r.value, r.offset) for r in await topics.produced()] == [(b"after", delivery.offset)]


async def test_a_batch_larger_than_kafkas_batches_arrives_whole_with_its_offsets(
    topics: Topics,
) -> None:
    """Records over several of the client's batches per partition (16 KB each), one record
    larger than a batch among them: every delivery names the offset its record has."""
    producer, topic = topics.producer, topics.topic
    sent = [message(f"order:o{n % 5}", n) for n in range(400)]
    sent[123] = Outgoing(b"order:o3", b"x" * 40_000)  # larger than a batch of its own
    deliveries = await producer.send_many(topic, sent)
    by_place = {(r.partition, r.offset): r for r in await topics.produced()}
    assert len(by_place) == len(sent)
    for outgoing, delivery in zip(sent, deliveries, strict=True):
        record = by_place[(delivery.partition, delivery.offset)]
        assert (record.key, record.value) == (outgoing.key, outgoing.value)


async def test_sending_while_kafka_is_down_raises_stream_unavailable(topics: Topics) -> None:
    async with topics.outage() as down:
        outage_topic = topics.topic if topics.kind == "memory" else "outage"
        with pytest.raises(StreamUnavailable) as caught:
            await down.send_many(outage_topic, [Outgoing(b"k", b"lost?")])
        assert caught.value.retriable and outage_topic in str(caught.value)
        with pytest.raises(StreamUnavailable):
            await down.send(outage_topic, Outgoing(b"k", b"lost?"))
    # The producer of the test's topic is not affected once Kafka answers again.
    delivery = await topics.producer.send(topics.topic, Outgoing(b"k", b"after"))
    assert [r.value for r in await topics.produced()] == [b"after"]
    assert delivery.partition == kafka_partition(b"k")


async def test_settled_returns_in_its_bound_once_what_was_handed_over_failed(
    topics: Topics,
) -> None:
    """``settled`` (the forwarder's wait before it reads a topic back): with Kafka away, a batch
    handed over fails for good within the producer's timeout, and ``settled`` then returns —
    this producer retries nothing of it later."""
    async with topics.outage() as down:
        outage_topic = topics.topic if topics.kind == "memory" else "outage"
        with pytest.raises(StreamUnavailable):
            await down.send_many(outage_topic, [Outgoing(b"k", b"lost?")])
        assert isinstance(down, KafkaProducer | MemoryProducer)
        await within(down.settled(), timeout_s=5, what="the producer settled in the outage")
    await topics.producer.send(topics.topic, Outgoing(b"k", b"after"))
    assert isinstance(topics.producer, KafkaProducer | MemoryProducer)
    # acknowledged: nothing in flight
    await within(topics.producer.settled(), timeout_s=5, what="the producer settled")
