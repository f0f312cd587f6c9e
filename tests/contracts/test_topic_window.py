"""Reading a window of a topic backwards from a cursor (the console's topic browser): one
contract, on the in-memory stream and on Kafka. Each partition's newest ``limit`` records before
the cursor, in offset order, and whether older ones remain; paging down visits every record once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.contracts.conftest import PARTITIONS, started_producer
from tests.kafka_topics import create_topic
from workers.adapters.kafka import KafkaStream, plain
from workers.adapters.memory import MemoryStream
from workers.devtools.embedded import EmbeddedStack
from workers.ports import Outgoing, Producer
from workers.runtime.adapters import Stream


@dataclass
class Windowed:
    stream: Stream
    producer: Producer
    topic: str


@pytest.fixture(params=["memory", "kafka"])
async def windowed(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Windowed]:
    topic = f"{unique_name}.window"
    if request.param == "memory":
        stream = MemoryStream(partitions={topic: PARTITIONS})
        yield Windowed(stream, stream.produced, topic)
        return
    url = stack.urls.kafka_url
    await create_topic(url, topic, partitions=PARTITIONS)
    async with started_producer(url, unique_name) as producer:
        yield Windowed(KafkaStream(plain(url), max_event_bytes=1 << 20), producer, topic)


async def test_windows_page_each_partition_newest_first_and_visit_every_record_once(
    windowed: Windowed,
) -> None:
    sent = [Outgoing(b"one-key", f"v{n}".encode(), [("n", str(n).encode())]) for n in range(12)]
    deliveries = await windowed.producer.send_many(windowed.topic, sent)
    partition = deliveries[0].partition  # one key: one partition, offsets 0..11
    newest = await windowed.stream.read_window(windowed.topic, limit=5)
    assert sorted(w.partition for w in newest) == list(range(PARTITIONS))
    mine = next(w for w in newest if w.partition == partition)
    assert [r.offset for r in mine.records] == [7, 8, 9, 10, 11]
    assert mine.end == 12 and mine.earliest == 0 and mine.older
    assert mine.records[-1].value == b"v11" and mine.records[-1].headers == (("n", b"11"),)
    for other in newest:
        if other.partition != partition:
            assert list(other.records) == [] and not other.older
    seen: list[int] = []
    before: int | None = None
    for _ in range(10):  # bounded: 12 records in pages of 5
        [page] = await windowed.stream.read_window(
            windowed.topic, limit=5, partition=partition, before_offset=before
        )
        seen.extend(r.offset for r in reversed(page.records))
        if not page.older:
            break
        before = page.start
    assert seen == list(range(11, -1, -1))


async def test_a_cursor_past_the_end_a_missing_partition_and_a_missing_topic(
    windowed: Windowed,
) -> None:
    await windowed.producer.send_many(windowed.topic, [Outgoing(b"k", b"only")])
    [page] = await windowed.stream.read_window(
        windowed.topic, limit=5, partition=PARTITIONS - 1, before_offset=0
    )
    assert list(page.records) == [] and not page.older  # nothing before offset 0
    assert await windowed.stream.read_window(windowed.topic, limit=5, partition=PARTITIONS) == []
    assert await windowed.stream.read_window(f"{windowed.topic}.nobody", limit=5) == []
    with pytest.raises(ValueError):
        await windowed.stream.read_window(windowed.topic, limit=0)
