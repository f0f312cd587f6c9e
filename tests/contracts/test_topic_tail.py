"""Following a topic from positions (``TopicTail``): one contract, on the in-memory stream and
on Kafka. Records come from the named offsets on (others from the beginning), each once, in
offset order per partition, those produced later as they arrive; a quiet interval yields []."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.contracts.conftest import PARTITIONS, Streamed
from workers.ports import Outgoing, Record


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


async def test_records_before_and_after_arrive_once_in_offset_order(streamed: Streamed) -> None:
    await streamed.producer.send_many(streamed.topic, [keyed(n) for n in range(10)])
    follow = streamed.stream.follow(streamed.topic, after={}, idle_s=0.2)
    try:
        first = await take(follow, 10)
        await streamed.producer.send_many(streamed.topic, [keyed(n) for n in range(10, 15)])
        later = await take(follow, 5)
    finally:
        await follow.aclose()  # type: ignore[attr-defined]
    got = first + later
    assert sorted(r.value for r in got) == sorted(f"v{n}".encode() for n in range(15))
    for offsets in by_partition(got).values():
        assert offsets == list(range(len(offsets)))  # each once, in order, from the beginning


async def test_following_from_positions_skips_what_is_before_them(streamed: Streamed) -> None:
    deliveries = await streamed.producer.send_many(streamed.topic, [keyed(n) for n in range(10)])
    counts = {p: sum(1 for d in deliveries if d.partition == p) for p in range(PARTITIONS)}
    after = {p: 1 for p, n in counts.items() if n}  # skip the first record of each partition
    follow = streamed.stream.follow(streamed.topic, after=after, idle_s=0.2)
    try:
        got = await take(follow, 10 - len(after))
        quiet = await anext(follow)
    finally:
        await follow.aclose()  # type: ignore[attr-defined]
    assert quiet == []
    assert {p: offsets[0] for p, offsets in by_partition(got).items()} == after
    assert len(got) == 10 - len(after)
