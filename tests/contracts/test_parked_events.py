"""The ParkedEvents contract (issue 38): parked queues in seq order per aggregate, idempotent by
source record; the head resolved once, and only the head; released entries leave the queue.
Memory and MongoDB (SecantusDB of the embedded stack) keep them alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from topics.errors import InvalidInput, NotFound, StoreUnavailable
from workers.adapters.memory.parked import MemoryParkedEvents
from workers.adapters.mongo import connect, database
from workers.adapters.mongo.client import Document
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
    async with mongo_parked(stack, unique_name) as store:
        yield store


@asynccontextmanager
async def mongo_parked(stack: EmbeddedStack, name: str) -> AsyncIterator[MongoParkedEvents]:
    """The MongoDB store on a database of its own, dropped after."""
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        store = MongoParkedEvents(database(client, name))
        await store.ensure_indexes()
        yield store
    finally:
        await client.drop_database(name)
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


class ReleasedOnceResolved:
    """The parked collection, with the appender's release of a head landing right after its
    resolution is written and before anything else is read: the interleaving a loaded machine
    gives an operator's ``dlq skip`` now and then (the appender releases a skipped head at
    once), planted on every resolution the store writes."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def update_one(self, query: Document, update: Document, **kwargs: Any) -> Any:
        written = await self._collection.update_one(query, update, **kwargs)
        await self._collection.delete_one({"_id": query["_id"]})
        return written

    async def find_one_and_update(self, query: Document, update: Document, **kwargs: Any) -> Any:
        written = await self._collection.find_one_and_update(query, update, **kwargs)
        await self._collection.delete_one({"_id": query["_id"]})
        return written


async def test_a_head_released_as_soon_as_it_is_resolved_is_answered_as_resolved(
    stack: EmbeddedStack, unique_name: str
) -> None:
    async with mongo_parked(stack, unique_name) as store:
        await store.park([entry("order:a", 1, 10, "undecodable"), entry("order:a", 2, 11)])
        store.collection = ReleasedOnceResolved(store.collection)  # type: ignore[assignment]
        head = await store.resolve("order:a", 1, "skip", "ops")  # not "released meanwhile"
        assert (head.seq, head.resolution, head.by) == (1, "skip", "ops")
        [behind] = await store.queue("order:a", limit=10)  # the release did land
        assert (behind.seq, behind.resolution) == (2, None)
        with pytest.raises(NotFound, match="order:b is not parked"):
            await store.resolve("order:b", 1, "skip", "ops")
