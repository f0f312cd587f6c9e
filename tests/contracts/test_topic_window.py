"""Reading a window of a topic backwards from a cursor (the console's topic browser): one
contract, on the in-memory stream and on Kafka. Each partition's newest ``limit`` records before
the cursor, in offset order, and whether older ones remain; paging down visits every record once.
"""

from __future__ import annotations

import pytest

from tests.contracts.conftest import PARTITIONS, Streamed
from workers.ports import Outgoing


async def test_windows_page_each_partition_newest_first_and_visit_every_record_once(
    streamed: Streamed,
) -> None:
    sent = [Outgoing(b"one-key", f"v{n}".encode(), [("n", str(n).encode())]) for n in range(12)]
    deliveries = await streamed.producer.send_many(streamed.topic, sent)
    partition = deliveries[0].partition  # one key: one partition, offsets 0..11
    newest = await streamed.stream.read_window(streamed.topic, limit=5)
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
        [page] = await streamed.stream.read_window(
            streamed.topic, limit=5, partition=partition, before_offset=before
        )
        seen.extend(r.offset for r in reversed(page.records))
        if not page.older:
            break
        before = page.start
    assert seen == list(range(11, -1, -1))


async def test_a_cursor_past_the_end_a_missing_partition_and_a_missing_topic(
    streamed: Streamed,
) -> None:
    await streamed.producer.send_many(streamed.topic, [Outgoing(b"k", b"only")])
    [page] = await streamed.stream.read_window(
        streamed.topic, limit=5, partition=PARTITIONS - 1, before_offset=0
    )
    assert list(page.records) == [] and not page.older  # nothing before offset 0
    assert await streamed.stream.read_window(streamed.topic, limit=5, partition=PARTITIONS) == []
    assert await streamed.stream.read_window(f"{streamed.topic}.nobody", limit=5) == []
    with pytest.raises(ValueError):
        await streamed.stream.read_window(streamed.topic, limit=0)
