"""The ``EventSearch`` port, on every event store: filters, newest-first order and paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from topics.envelope import Event, Metadata, new_event
from workers.ports import EventQuery

from .backends import Backend, backend_claiming

backend = backend_claiming("search")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def stored(aggregate_id: str, version: int, kind: str, minutes: int, **meta: str) -> Event:
    return new_event(
        "order", aggregate_id, kind, {"n": version}, version=version,
        occurred_at=T0 + timedelta(minutes=minutes), metadata=Metadata(**meta),
    )  # fmt: skip


async def test_search_filters_and_pages_newest_first(backend: Backend) -> None:
    events, search = backend.events, backend.search
    written = [
        stored("s-1", 1, "OrderPlaced", 0, command_id="c-1", correlation_id="k-1"),
        stored("s-1", 2, "OrderPaid", 1, command_id="c-2", correlation_id="k-1"),
        stored("s-10", 1, "OrderPlaced", 2, command_id="c-3"),
        stored("s-2", 1, "OrderPlaced", 3),
        stored("t-1", 1, "OrderPlaced", 4),
        stored("s-2", 2, "OrderPaid", 3),  # the same moment as s-2 v1: ordered by id
    ]
    await events.append(written[:5])
    await events.append(written[5:])

    async def ids(query: EventQuery, limit: int = 100) -> list[tuple[str, int | None]]:
        return [(e.aggregate_id, e.version) for e in await search.search(query, limit=limit)]

    assert await ids(EventQuery(id_prefix="s-1")) == [("s-10", 1), ("s-1", 2), ("s-1", 1)]
    assert await ids(EventQuery(event_type="OrderPaid")) == [("s-2", 2), ("s-1", 2)]
    assert await ids(EventQuery(command_id="c-2")) == [("s-1", 2)]
    assert await ids(EventQuery(correlation_id="k-1")) == [("s-1", 2), ("s-1", 1)]
    window = EventQuery(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert await ids(window) == [("s-10", 1), ("s-1", 2)]  # since inclusive, until exclusive
    assert await ids(EventQuery(aggregate_type="cart")) == []
    assert await ids(EventQuery(id_prefix=".*")) == []  # a prefix is text, not a pattern

    everything = await search.search(EventQuery(), limit=100)
    newest_first = sorted(everything, key=lambda e: (e.occurred_at, e.id), reverse=True)
    assert everything == newest_first and len(everything) == 6
    paged: list[Event] = []
    before = None
    while True:
        page = await search.search(EventQuery(), limit=2, before=before)
        paged += page
        if len(page) < 2:
            break
        before = (page[-1].occurred_at, page[-1].id)
    assert paged == everything  # every event once, in order, across equal timestamps


async def test_the_tiered_store_searches_hot_and_archive_merged_newest_first() -> None:
    from workers.adapters.memory.events import MemoryEventStore
    from workers.roles.ops.archive import TieredEvents

    hot, archive = MemoryEventStore(), MemoryEventStore()
    await archive.append([stored("a-1", 1, "OrderPlaced", 0), stored("a-1", 2, "OrderPaid", 2)])
    await hot.append([stored("a-1", 3, "OrderPaid", 3), stored("a-2", 1, "OrderPlaced", 1)])
    tiered = TieredEvents(hot, archive)
    found = await tiered.search(EventQuery(id_prefix="a-"), limit=3)
    assert [(e.aggregate_id, e.version) for e in found] == [("a-1", 3), ("a-1", 2), ("a-2", 1)]
    rest = await tiered.search(
        EventQuery(id_prefix="a-"), limit=3, before=(found[-1].occurred_at, found[-1].id)
    )
    assert [(e.aggregate_id, e.version) for e in rest] == [("a-1", 1)]
