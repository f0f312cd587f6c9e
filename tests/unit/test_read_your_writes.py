"""The read-your-writes waiter on the memory twins: a refusal is final, a bound is kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.waiting import wait_for
from topics.envelope import derived_event_id, new_event
from workers.adapters.memory.events import MemoryEventStore
from workers.adapters.memory.live import MemoryLiveFeed
from workers.adapters.memory.rejections import MemoryRejections
from workers.examples.domains import default_domains
from workers.ports import LiveFeed, Outgoing, Rejection
from workers.runtime.queries import failure
from workers.runtime.read_your_writes import NotYetStored, ReadAfter, RefusedAtStore, WriteWaiter

REF = ("order", "o-1")


def waiter() -> tuple[WriteWaiter, MemoryEventStore, MemoryRejections]:
    events, rejections = MemoryEventStore(), MemoryRejections()
    return (
        WriteWaiter(domains=default_domains(), events=events, rejections=rejections),
        events,
        rejections,
    )


async def test_a_refused_command_is_answered_409_at_once_not_after_the_bound() -> None:
    wait, _, rejections = waiter()
    event_id = derived_event_id("order", "o-1", "c-7")
    await rejections.record([Rejection(
        event_id, "order", "o-1", "OrderShipped", "transition_rejected_at_store",
        "OrderShipped may not follow OrderPlaced.", "c-7", datetime.now(UTC),
    )])  # fmt: skip
    with pytest.raises(RefusedAtStore) as refused:
        await wait.stored(REF, ReadAfter(None, "c-7", wait_ms=30_000))
    answer = failure(refused.value)
    assert answer.status == 409
    assert answer.body["error"] == "refused"
    assert answer.body["reason"] == "transition_rejected_at_store"
    assert answer.body["event_id"] == event_id and answer.body["command_id"] == "c-7"


async def test_a_stored_command_gives_its_version_and_a_view_behind_it_is_504() -> None:
    wait, events, _ = waiter()
    placed = new_event(
        "order", "o-1", "OrderPlaced", {"items": []}, version=1,
        id=derived_event_id("order", "o-1", "c-1"),
    )  # fmt: skip
    await events.append([placed])
    await wait.stored(REF, ReadAfter(None, "c-1", wait_ms=0))  # stored: returns

    async def view_version() -> int:
        return 0  # the projection has folded nothing yet

    with pytest.raises(NotYetStored) as behind:
        await wait.in_view(REF, ReadAfter(None, "c-1", wait_ms=20), view_version)
    answer = failure(behind.value)
    assert answer.status == 504 and answer.body["error"] == "not_yet_stored"
    assert answer.body["stored_version"] == 0 and answer.body["wanted_version"] == 1
    assert "the projection is behind" in answer.body["message"]


def test_parse_asks_for_nothing_without_its_parameters() -> None:
    assert ReadAfter.parse({"limit": "5"}) is None
    assert ReadAfter.parse({"min_version": "3"}) == ReadAfter(3, None, 1000)


def fed_waiter(
    safety_poll_s: float,
) -> tuple[WriteWaiter, MemoryEventStore, MemoryRejections, MemoryLiveFeed]:
    events, rejections, feed = MemoryEventStore(), MemoryRejections(), MemoryLiveFeed()

    async def the_feed() -> LiveFeed:
        return feed

    wait = WriteWaiter(
        domains=default_domains(), events=events, rejections=rejections, feed=the_feed,
        safety_poll_s=safety_poll_s,
    )  # fmt: skip
    return wait, events, rejections, feed


async def listening(feed: MemoryLiveFeed) -> None:
    await wait_for(lambda: feed.listeners() == 1, timeout_s=10, what="the wait listening")


async def store_and_announce(events: MemoryEventStore, feed: MemoryLiveFeed, command: str) -> int:
    placed = new_event(
        "order", "o-1", "OrderPlaced", {"items": []}, version=1,
        id=derived_event_id("order", "o-1", command),
    )  # fmt: skip
    await events.append([placed])
    feed.announce([Outgoing.of(placed)])
    return 1


async def test_the_wait_ends_on_the_announcement_of_the_aggregate() -> None:
    # The safety poll is an hour away: only the announcement can end this wait.
    for after in (ReadAfter(1, None, wait_ms=30_000), ReadAfter(None, "c-1", wait_ms=30_000)):
        wait, events, _, feed = fed_waiter(safety_poll_s=3600)
        waiting = asyncio.create_task(wait.stored(REF, after))
        await listening(feed)
        assert not waiting.done()
        await store_and_announce(events, feed, "c-1")
        await asyncio.wait_for(waiting, 10)  # a bound, far below the safety poll
        assert feed.listeners() == 0  # the wait stopped listening


async def test_an_announcement_of_another_aggregate_does_not_end_the_wait() -> None:
    wait, events, _, feed = fed_waiter(safety_poll_s=3600)
    other = new_event("order", "o-2", "OrderPlaced", {"items": []}, version=1)
    await events.append([other])
    feed.announce([Outgoing.of(other)])
    with pytest.raises(NotYetStored) as behind:
        await wait.stored(REF, ReadAfter(1, None, wait_ms=50))
    assert behind.value.stored_version == 0  # checked once more at the bound
    assert feed.listeners() == 0


async def test_a_lost_announcement_is_caught_by_the_safety_poll() -> None:
    wait, events, _, feed = fed_waiter(safety_poll_s=0.02)
    waiting = asyncio.create_task(wait.stored(REF, ReadAfter(None, "c-1", wait_ms=30_000)))
    await listening(feed)
    feed.lose_next(1)
    await store_and_announce(events, feed, "c-1")
    assert feed.announced == 1
    await asyncio.wait_for(waiting, 10)  # answered (200) though nobody heard of the event
    assert feed.listeners() == 0


async def test_a_reconnect_of_the_feed_makes_the_wait_read_the_store() -> None:
    wait, events, _, feed = fed_waiter(safety_poll_s=3600)
    waiting = asyncio.create_task(wait.stored(REF, ReadAfter(1, None, wait_ms=30_000)))
    await listening(feed)
    feed.lose_next(1)
    await store_and_announce(events, feed, "c-1")
    feed.reconnect()  # "you may have missed announcements": the wait checks the store
    await asyncio.wait_for(waiting, 10)


async def test_a_refusal_and_the_bound_stop_listening_too() -> None:
    wait, _, rejections, feed = fed_waiter(safety_poll_s=3600)
    event_id = derived_event_id("order", "o-1", "c-7")
    await rejections.record([Rejection(
        event_id, "order", "o-1", "OrderShipped", "transition_rejected_at_store",
        "OrderShipped may not follow OrderPlaced.", "c-7", datetime.now(UTC),
    )])  # fmt: skip
    with pytest.raises(RefusedAtStore):
        await wait.stored(REF, ReadAfter(None, "c-7", wait_ms=30_000))
    with pytest.raises(NotYetStored) as late:
        await wait.stored(REF, ReadAfter(None, "c-8", wait_ms=0))
    assert failure(late.value).status == 504
    assert feed.listeners() == 0


async def test_a_feed_that_fails_falls_back_to_polling_the_store() -> None:
    events, rejections = MemoryEventStore(), MemoryRejections()

    async def broken() -> LiveFeed:
        raise ConnectionError("no feed here")

    wait = WriteWaiter(
        domains=default_domains(), events=events, rejections=rejections, feed=broken,
        safety_poll_s=3600,
    )  # fmt: skip
    waiting = asyncio.create_task(wait.stored(REF, ReadAfter(1, None, wait_ms=30_000)))
    await events.append([new_event("order", "o-1", "OrderPlaced", {"items": []}, version=1)])
    await asyncio.wait_for(waiting, 10)  # found by the short backoff, not the hour-long poll
