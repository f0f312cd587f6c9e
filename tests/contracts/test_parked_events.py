"""The ParkedEvents contract (issue 38): parked queues in seq order per aggregate, idempotent by
source record; the head resolved once, and only the head; released entries leave the queue.
Memory and MongoDB (SecantusDB of the embedded stack) keep them alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from topics.errors import InvalidInput, NotFound, StoreUnavailable
from workers.adapters.memory.parked import MemoryParkedEvents
from workers.adapters.mongo import connect, database
from workers.adapters.mongo.parked import MongoParkedEvents
from workers.devtools.embedded import EmbeddedStack
from workers.ports import PARKED, ParkedEntry, ParkedEvents, Record

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=["memory", "mongo"])
async def parked(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[ParkedEvents]:
    if request.param == "memory":
        yield MemoryParkedEvents()
        return
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        store = MongoParkedEvents(database(client, unique_name))
        await store.ensure_indexes()
        yield store
    finally:
        await client.drop_database(unique_name)
        await client.close()


def entry(key: str, seq: int, offset: int, reason: str = PARKED) -> ParkedEntry:
    record = Record("t.events", 2, offset, key.encode(), b'{"raw": "\xff"}', (("h", b"\x00v"),))
    return ParkedEntry(key, seq, record, reason, f"detail {seq}", f"e{offset}", AT)


async def test_queues_are_kept_in_seq_order_and_a_source_is_parked_once(
    parked: ParkedEvents,
) -> None:
    await parked.park(
        [entry("order:a", 1, 10, "undecodable"), entry("order:b", 1, 11, "oversized")]
    )
    await parked.park([entry("order:a", 3, 13), entry("order:a", 2, 12)])
    await parked.park([entry("order:a", 9, 12)])  # the same record again: its first seq stays
    queue = await parked.queue("order:a", limit=10)
    assert [(e.seq, e.record.offset, e.reason) for e in queue] == [
        (1, 10, "undecodable"),
        (2, 12, PARKED),
        (3, 13, PARKED),
    ]
    first = queue[0]
    assert first.record == entry("order:a", 1, 10).record  # bytes and headers as taken
    assert first.parked_at == AT.replace(microsecond=123000) and first.event_id == "e10"
    assert [e.seq for e in await parked.queue("order:a", limit=2)] == [1, 2]
    heads = await parked.heads()
    assert {k: (h.seq, last) for k, (h, last) in heads.items()} == {
        "order:a": (1, 3),
        "order:b": (1, 1),
    }
    assert set(await parked.heads(["order:b", "order:zz"])) == {"order:b"}
    assert await parked.heads([]) == {}
    assert await parked.sources(["t.events/2/12", "t.events/2/99"]) == {"t.events/2/12"}


async def test_only_the_head_is_resolved_and_its_first_resolution_stays(
    parked: ParkedEvents,
) -> None:
    await parked.park([entry("order:a", 1, 10, "undecodable"), entry("order:a", 2, 11)])
    with pytest.raises(InvalidInput, match="entry 2 of order:a waits behind the head"):
        await parked.resolve("order:a", 2, "skip", "ops")
    with pytest.raises(NotFound, match="order:none is not parked"):
        await parked.resolve("order:none", 1, "skip", "ops")
    head = await parked.resolve("order:a", 1, "replay", "e-fixed")
    assert (head.resolution, head.by) == ("replay", "e-fixed")
    again = await parked.resolve("order:a", 1, "skip", "ops")  # resolved already: kept
    assert (again.resolution, again.by) == ("replay", "e-fixed")
    await parked.relabel("t.events/2/11", "unknown_event_type", "no such type here now")
    await parked.remove(["t.events/2/10", "t.events/2/10"])
    [new_head] = await parked.queue("order:a", limit=10)
    assert (new_head.seq, new_head.reason, new_head.resolution) == (2, "unknown_event_type", None)
    await parked.remove(["t.events/2/11"])
    assert await parked.heads() == {}


async def test_the_memory_store_down_raises_unavailable() -> None:
    store = MemoryParkedEvents()
    store.down()
    with pytest.raises(StoreUnavailable):
        await store.park([entry("order:a", 1, 10)])
