"""Reading a topic a bounded slice at a time from positions (``TopicPages``, the global read's
pages): one contract, on the in-memory stream and on Kafka. Each partition's run is contiguous
from its start, the limit bounds all of them together, the ends say what remains, and reading
on from where a slice stopped visits every record once; a position the log does not hold is
refused, never read from somewhere else."""

from __future__ import annotations

import pytest

from tests.contracts.conftest import PARTITIONS, Streamed
from topics.errors import PositionOutdated
from workers.ports import Outgoing, TopicSlice


def keyed(n: int) -> Outgoing:
    return Outgoing(f"k{n % 7}".encode(), f"v{n}".encode(), [("n", str(n).encode())])


def read_to(found: TopicSlice) -> dict[int, int]:
    """The next offset of each partition after everything ``found`` holds."""
    return {p: (run[-1].offset + 1 if run else found.starts[p]) for p, run in found.runs.items()}


async def test_slices_from_positions_visit_every_record_once_within_their_limit(
    streamed: Streamed,
) -> None:
    deliveries = await streamed.producer.send_many(streamed.topic, [keyed(n) for n in range(40)])
    counts = {p: sum(1 for d in deliveries if d.partition == p) for p in range(PARTITIONS)}
    pages = streamed.stream.pages()
    try:
        after: dict[int, int] = {}
        seen: list[tuple[int, int]] = []
        for _ in range(40):  # bounded: 40 records in slices of at most 9
            found = await pages.read(streamed.topic, after=after, limit=9)
            assert found.partitions == PARTITIONS
            taken = sum(len(run) for run in found.runs.values())
            assert taken <= 9
            for p, run in found.runs.items():
                assert [r.offset for r in run] == list(
                    range(found.starts[p], found.starts[p] + len(run))
                )
                assert found.ends[p] == counts[p]
            seen += [(r.partition, r.offset) for run in found.runs.values() for r in run]
            after = read_to(found)
            if all(after[p] >= found.ends[p] for p in range(PARTITIONS)):
                break
        assert sorted(seen) == sorted((d.partition, d.offset) for d in deliveries)
        values = {(r.partition, r.offset): r.value for run in found.runs.values() for r in run}
        assert all(v.startswith(b"v") for v in values.values())
        await streamed.producer.send_many(streamed.topic, [keyed(n) for n in range(40, 45)])
        later = await pages.read(streamed.topic, after=after, limit=100)
        assert sum(len(run) for run in later.runs.values()) == 5  # only what came since
    finally:
        await pages.stop()


async def test_a_partition_not_named_starts_at_its_first_record(streamed: Streamed) -> None:
    deliveries = await streamed.producer.send_many(streamed.topic, [keyed(n) for n in range(12)])
    partition = deliveries[0].partition
    pages = streamed.stream.pages()
    try:
        found = await pages.read(streamed.topic, after={partition: 1}, limit=100)
    finally:
        await pages.stop()
    assert found.starts[partition] == 1
    assert all(found.starts[p] == 0 for p in range(PARTITIONS) if p != partition)
    assert sum(len(run) for run in found.runs.values()) == 11
    mine = [d.offset for d in deliveries if d.partition == partition]
    assert [r.offset for r in found.runs[partition]] == mine[1:]
    second = next(n for n, d in enumerate(deliveries) if (d.partition, d.offset) == (partition, 1))
    assert found.runs[partition][0].value == f"v{second}".encode()


async def test_an_offset_past_a_partitions_end_is_refused(streamed: Streamed) -> None:
    await streamed.producer.send_many(streamed.topic, [keyed(n) for n in range(5)])
    pages = streamed.stream.pages()
    try:
        with pytest.raises(PositionOutdated, match="read again from the beginning"):
            await pages.read(streamed.topic, after={0: 500}, limit=10)
        found = await pages.read(streamed.topic, after={}, limit=10)  # the reader is still good
    finally:
        await pages.stop()
    assert sum(len(run) for run in found.runs.values()) == 5
    with pytest.raises(ValueError, match="at least one record"):
        await pages.read(streamed.topic, after={}, limit=0)
