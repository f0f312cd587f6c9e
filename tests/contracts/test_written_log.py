"""What topics already hold, read back (``WrittenLog``): one contract, on the in-memory stream and
on Kafka. A topic nobody wrote reads as empty, also once it is made after a first read; every
record stamped at or after the time asked is returned with its key, value and headers (Kafka
leaves out older ones; memory, which keeps no time, counts every record as recent); a
partition's time is known at an offset holding a record and None past its end; Kafka away is
StreamUnavailable; a slow Kafka is read to the end, one that stops answering fails the call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contracts.conftest import PARTITIONS, started_producer
from tests.faults import proxied_broker
from tests.kafka_topics import create_topic
from tests.waiting import wait_for, within
from topics.errors import StreamUnavailable
from workers.adapters.kafka import plain
from workers.adapters.kafka.written import KafkaWrittenLog
from workers.adapters.memory import MemoryProducer
from workers.adapters.memory.written import MemoryWrittenLog
from workers.devtools.embedded import EmbeddedStack, free_port
from workers.ports import Outgoing, Producer, WrittenLog


@dataclass
class Written:
    log: WrittenLog
    producer: Producer
    topic: str
    kind: str
    url: str = ""


@pytest.fixture(params=["memory", "kafka"])
async def w(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Written]:
    topic = f"{unique_name}.written"
    if request.param == "memory":
        producer = MemoryProducer(partitions={topic: PARTITIONS})
        yield Written(MemoryWrittenLog(producer), producer, topic, "memory")
        return
    url = stack.urls.kafka_url
    log = KafkaWrittenLog(plain(url), fetch_max_wait_ms=10)
    async with started_producer(url, unique_name) as producer:
        try:
            yield Written(log, producer, topic, "kafka", url)
        finally:
            await log.stop()


async def made(w: Written) -> None:
    """The topic exists, with the contract's partitions."""
    if w.kind == "kafka":
        await create_topic(w.url, w.topic, partitions=PARTITIONS)


async def test_a_topic_nobody_wrote_reads_as_empty_until_it_is_written(w: Written) -> None:
    assert await w.log.since(w.topic, 0) == []
    await made(w)
    await w.producer.send(w.topic, Outgoing(b"k", b"v", [("h", b"1")]))
    [record] = await w.log.since(w.topic, 0)  # a read before the topic existed does not hide it
    assert (record.key, record.value, tuple(record.headers)) == (b"k", b"v", (("h", b"1"),))


async def test_every_record_since_a_time_is_read_back_and_kafka_leaves_older_ones_out(
    w: Written,
) -> None:
    await made(w)
    for n in range(3):
        await w.producer.send(w.topic, Outgoing(f"k{n}".encode(), b"old"))
    between = int(time.time() * 1000) + 5
    # Records produced once the clock passed it carry a later stamp.
    await wait_for(lambda: time.time() * 1000 > between, timeout_s=1, what="the clock to pass")
    for n in range(3):
        await w.producer.send(w.topic, Outgoing(f"k{n}".encode(), b"new"))
    values = sorted(r.value for r in await w.log.since(w.topic, between))
    if w.kind == "kafka":
        assert values == [b"new"] * 3
    else:
        assert values == [b"new"] * 3 + [b"old"] * 3  # no stamps: every record is recent
    assert len(await w.log.since(w.topic, 0)) == 6


async def test_a_partition_has_a_time_where_it_holds_a_record_and_none_past_its_end(
    w: Written,
) -> None:
    await made(w)
    delivery = await w.producer.send(w.topic, Outgoing(b"k", b"v"), partition=1)
    at = await w.log.time_at(w.topic, 1, delivery.offset)
    assert at is not None and at <= int(time.time() * 1000)
    assert await w.log.time_at(w.topic, 1, delivery.offset + 1) is None
    assert await w.log.time_at(w.topic, 0, 0) is None  # nothing written there


async def test_kafka_away_is_stream_unavailable(w: Written) -> None:
    if w.kind == "kafka":
        away: WrittenLog = KafkaWrittenLog(plain(f"127.0.0.1:{free_port()}", timeout_ms=500))
    else:
        assert isinstance(w.log, MemoryWrittenLog)
        w.log.down()
        away = w.log
    with pytest.raises(StreamUnavailable) as caught:
        await away.since(w.topic, 0)
    assert caught.value.retriable
    with pytest.raises(StreamUnavailable):
        await away.time_at(w.topic, 0, 0)


SLOW_TIMEOUT_MS = 1000
"""The slow broker's client timeout: a call's bound is two of them without progress."""


async def test_a_slow_broker_is_read_to_the_end_and_a_silent_one_fails_the_call(
    tmp_path: Path, unique_name: str
) -> None:
    """Every round trip answered, each well within the bound, the whole read-back longer than
    it: read to the end (it once gave up after two timeouts in all and reconnected on the next
    try, over and over). A broker that stops answering still fails the call."""
    async with proxied_broker(tmp_path) as (url, proxy):
        topic = f"{unique_name}.slow"
        await create_topic(url, topic, partitions=PARTITIONS)
        async with started_producer(url, unique_name) as producer:
            for partition in range(PARTITIONS):
                await producer.send(topic, Outgoing(b"k", b"v"), partition=partition)
        log = KafkaWrittenLog(plain(url, timeout_ms=SLOW_TIMEOUT_MS), fetch_max_wait_ms=10)
        bound_s = 2 * SLOW_TIMEOUT_MS / 1000
        try:
            proxy.delay(0.15)  # each chunk, each way: a round trip takes 0.3 s or more
            started = time.monotonic()
            records = await log.since(topic, 0)
            took = time.monotonic() - started
            assert sorted(r.partition for r in records) == list(range(PARTITIONS))
            assert took > bound_s, f"the read took {took:.2f} s: not slow enough to prove it"
            proxy.pause()
            with pytest.raises(StreamUnavailable):
                # a failure, not a hang
                await within(log.since(topic, 0), timeout_s=10 * bound_s, what="the read to fail")
        finally:
            proxy.resume()
            await log.stop()
