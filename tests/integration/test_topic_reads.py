"""The console's topic reads on the embedded broker: a budget bounds every read, cursors page
a window with nothing skipped or repeated, a time bound keeps the records stamped inside it,
describing a topic gives its partitions and offsets, and Kafka away is StreamUnavailable."""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaProducer

from tests.kafka_topics import create_topic
from topics.errors import StreamUnavailable
from workers.adapters.kafka import plain
from workers.adapters.kafka.topic_reads import describe_topics, read_range
from workers.devtools.embedded import EmbeddedStack, free_port

PARTITIONS = 2


async def produce(url: str, topic: str, keys: list[str], *, at_ms: int | None = None) -> None:
    """``keys`` as records, stamped ``at_ms`` when given (else now)."""
    producer = AIOKafkaProducer(bootstrap_servers=url.removeprefix("kafka://"), linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, b"v-" + k.encode(), key=k.encode(), timestamp_ms=at_ms)
            for k in keys
        ]
        for delivery in sent:
            await delivery
    finally:
        await producer.stop()


async def test_a_budget_bounds_each_read_and_cursors_page_the_whole_topic_once(
    stack: EmbeddedStack, unique_name: str
) -> None:
    url, topic = stack.urls.kafka_url, f"{unique_name}.pages"
    await create_topic(url, topic, partitions=PARTITIONS)
    keys = [f"k{n}" for n in range(300)]
    await produce(url, topic, keys)
    seen: list[tuple[int, int]] = []
    before: dict[int, int] | None = None
    for _ in range(300):  # bounded: each page reads at least one record while any remain
        read = await read_range(plain(url), topic, budget=50, before=before, timeout_s=30)
        assert read.scanned <= 50
        seen += [(r.partition, r.offset) for r in read.records]
        if not any(p.cut for p in read.ranges):
            break
        before = {p.partition: p.start for p in read.ranges}
    assert len(seen) == len(set(seen)) == len(keys)  # every record once
    past = await read_range(plain(url), topic, budget=50, before={0: 10**9}, timeout_s=30)
    [beyond] = [p for p in past.ranges if p.partition == 0]
    assert beyond.high == beyond.end and beyond.start <= beyond.end  # from the end found
    [state] = await describe_topics(plain(url), [topic], timeout_s=10)
    assert state.exists and len(state.partitions) == PARTITIONS and state.replication == 1
    assert sum(p.end for p in state.partitions) <= len(keys)  # the broker's word, maybe behind


async def test_a_time_bound_keeps_the_records_stamped_inside_it(
    stack: EmbeddedStack, unique_name: str
) -> None:
    url, topic = stack.urls.kafka_url, f"{unique_name}.times"
    await create_topic(url, topic, partitions=PARTITIONS)
    now_ms = int(time.time() * 1000)
    await produce(url, topic, [f"early{n}" for n in range(50)], at_ms=now_ms - 10_000)
    await produce(url, topic, [f"late{n}" for n in range(50)], at_ms=now_ms)
    middle_ms = now_ms - 5_000
    late = await read_range(plain(url), topic, budget=1000, since_ms=middle_ms, timeout_s=30)
    found = {(r.key or b"").decode() for r in late.records if (r.timestamp_ms or 0) >= middle_ms}
    assert found == {f"late{n}" for n in range(50)}
    early = await read_range(plain(url), topic, budget=1000, until_ms=middle_ms, timeout_s=30)
    kept = {(r.key or b"").decode() for r in early.records if (r.timestamp_ms or 0) <= middle_ms}
    assert kept == {f"early{n}" for n in range(50)}


async def test_kafka_away_is_stream_unavailable() -> None:
    away = plain(f"127.0.0.1:{free_port()}", timeout_ms=500)
    with pytest.raises(StreamUnavailable):
        await describe_topics(away, ["t"], timeout_s=2)
    with pytest.raises(StreamUnavailable):
        await read_range(away, "t", budget=10, timeout_s=2)
