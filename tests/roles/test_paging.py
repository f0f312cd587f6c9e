"""Paging by version: every page says whether more exist; following it yields every event once,
and never skips a version that is gone (issue 46): a page ends before a hole, a read at one says
where history resumes."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.roles.support import added
from topics.errors import HistoryGone
from workers.adapters.memory import MemoryEventStore
from workers.roles.read.paging import DEFAULT_PAGE, next_link, read_all, read_page

REF = ("counter", "c1")


async def test_following_pages_yields_every_event_exactly_once_beyond_the_default_page() -> None:
    store = MemoryEventStore()
    total = DEFAULT_PAGE * 2 + 37
    await store.append(added("c1", range(1, total + 1)))
    seen: list[int] = []
    after, pages = 0, 0
    while True:
        page = await read_page(store, REF, after_version=after)
        seen += [e.version or 0 for e in page.events]
        pages += 1
        assert len(page.events) <= DEFAULT_PAGE
        if not page.more:
            break
        assert page.next_after_version == seen[-1]
        after = page.next_after_version
    assert seen == list(range(1, total + 1)) and pages == 3
    assert page.next_after_version == total


async def test_events_appended_between_pages_are_found_by_the_next_page() -> None:
    store = MemoryEventStore()
    await store.append(added("c1", range(1, 11)))
    first = await read_page(store, REF, limit=10)
    assert not first.more and first.next_after_version == 10  # the head, as of this read
    await store.append(added("c1", range(11, 16)))
    second = await read_page(store, REF, after_version=first.next_after_version, limit=10)
    assert [e.version for e in second.events] == list(range(11, 16)) and not second.more
    third = await read_page(store, REF, after_version=second.next_after_version, limit=10)
    assert third.events == [] and not third.more and third.next_after_version == 15


async def test_a_page_ending_exactly_at_the_head_says_no_more() -> None:
    store = MemoryEventStore()
    await store.append(added("c1", range(1, 6)))
    page = await read_page(store, REF, limit=5)
    assert len(page.events) == 5 and not page.more
    page = await read_page(store, REF, limit=4)
    assert len(page.events) == 4 and page.more and page.next_after_version == 4


async def test_read_all_walks_every_page_in_order() -> None:
    store = MemoryEventStore()
    await store.append(added("c1", range(1, 2502)))
    versions = [e.version async for e in read_all(store, REF, page=1000)]
    assert versions == list(range(1, 2502))
    assert [e.version async for e in read_all(store, REF, after_version=2500)] == [2501]


async def test_an_empty_history_is_one_empty_last_page() -> None:
    page = await read_page(MemoryEventStore(), REF, after_version=3)
    assert page.events == [] and not page.more and page.next_after_version == 3


async def test_a_page_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        await read_page(MemoryEventStore(), REF, limit=0)


def test_the_link_names_the_next_page_and_escapes_its_query() -> None:
    link = next_link("/v1/order/o1/events", {"after_version": 100, "limit": 100})
    assert link == '</v1/order/o1/events?after_version=100&limit=100>; rel="next"'
    odd = next_link("/v1/rooms/r/messages", {"as_of": "2026-01-01T00:00:00+00:00"})
    assert "as_of=2026-01-01T00%3A00%3A00%2B00%3A00" in odd


async def test_a_page_ends_before_a_hole_and_a_read_starting_at_it_names_where_history_resumes() -> (
    None
):
    store = MemoryEventStore()  # versions 6-9 stored nowhere (an archive that lost them)
    await store.append(added("c1", [*range(1, 6), *range(10, 13)]))
    page = await read_page(store, REF, limit=100)
    assert [e.version for e in page.events] == [1, 2, 3, 4, 5]
    assert page.more and page.next_after_version == 5  # never 1-5 and 10-12 as one page
    with pytest.raises(HistoryGone, match=r"versions 6 to 9 are stored nowhere") as raised:
        await read_page(store, REF, after_version=5)
    assert (raised.value.after_version, raised.value.whole_from) == (5, 10)
    with pytest.raises(HistoryGone, match=r"after_version=9\)") as raised:
        await read_page(store, REF, after_version=7)
    assert raised.value.whole_from == 10
    assert [e.version for e in (await read_page(store, REF, after_version=9)).events] == [
        10,
        11,
        12,
    ]
    seen: list[int] = []
    with pytest.raises(HistoryGone):
        async for event in read_all(store, REF, page=2):
            seen.append(event.version or 0)
    assert seen == [1, 2, 3, 4, 5]


@settings(max_examples=80, deadline=None)
@given(st.sets(st.integers(1, 40), min_size=1), st.integers(1, 7))
def test_following_pages_and_holes_serves_each_stored_version_once_and_every_hole_is_said(
    stored: set[int], limit: int
) -> None:
    """Whatever versions are gone: a reader that follows ``more`` and resumes at ``whole_from``
    gets every stored version once, in order, and is told of each hole exactly where it is."""

    async def follow() -> None:
        store = MemoryEventStore()
        await store.append(added("c1", sorted(stored)))
        seen: list[int] = []
        holes: list[tuple[int, int]] = []
        after = 0
        while True:
            try:
                page = await read_page(store, REF, after_version=after, limit=limit)
            except HistoryGone as e:
                holes.append((e.after_version, e.whole_from))
                after = e.whole_from - 1
                continue
            served = [e.version or 0 for e in page.events]
            assert served == list(range(after + 1, after + 1 + len(served)))  # whole
            seen += served
            if not page.more:
                break
            after = page.next_after_version
        assert seen == sorted(stored)
        present = [0, *sorted(stored)]
        assert holes == [(a, b) for a, b in itertools.pairwise(present) if b > a + 1]

    asyncio.run(follow())
