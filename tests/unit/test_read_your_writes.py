"""The read-your-writes waiter on the memory twins: a refusal is final, a bound is kept, waiters
are bounded per process and principal, share one store check per aggregate, and are woken by
the live feed."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from tests.waiting import wait_for, within
from topics.envelope import derived_event_id, new_event
from topics.errors import EventfleetError, InvalidInput
from workers.adapters.memory.events import MemoryEventStore
from workers.adapters.memory.live import MemoryLiveFeed
from workers.adapters.memory.rejections import MemoryRejections
from workers.examples.domains import default_domains
from workers.http.declared import OutcomeQuery
from workers.http.edge.params import bind_query
from workers.http.queries import failure
from workers.http.ryw import (
    CHUNK,
    Caller,
    NotYetStored,
    ReadAfter,
    RefusedAtStore,
    TooManyWaiters,
    WaitBounds,
    WriteWaiter,
)
from workers.http.ryw.reads import FIRST_POLL_S, SAFETY_PER_TICK
from workers.metrics import create_ryw_metrics
from workers.ports import AggregateRef, Head, LiveFeed, Outgoing, Rejection
from workers.roles.command.requests import check_ids

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


def test_a_read_waits_for_any_command_id_an_append_takes_and_no_longer_one() -> None:
    for length in (230, 256):  # an append takes each of them, so a read may wait for it
        check_ids({"command_id": "c" * length})
        assert ReadAfter.parse({"command_id": "c" * length}) == ReadAfter(None, "c" * length, 1000)
        assert bind_query(OutcomeQuery, {"command_id": "c" * length}).command_id == "c" * length
    with pytest.raises(InvalidInput, match="command_id"):
        check_ids({"command_id": "c" * 257})
    with pytest.raises(InvalidInput, match="command_id must be 1 to 256 characters"):
        ReadAfter.parse({"command_id": "c" * 257, "wait_ms": "5"})
    with pytest.raises(InvalidInput, match="command_id must be 1 to 256 characters"):
        bind_query(OutcomeQuery, {"command_id": "c" * 257})


def fed_waiter(
    safety_poll_s: float,
) -> tuple[WriteWaiter, MemoryEventStore, MemoryRejections, MemoryLiveFeed]:
    events, rejections, feed = MemoryEventStore(), MemoryRejections(), MemoryLiveFeed()

    async def the_feed() -> LiveFeed:
        return feed

    wait = WriteWaiter(
        domains=default_domains(), events=events, rejections=rejections, feed=the_feed,
        bounds=WaitBounds(safety_poll_s=safety_poll_s),
    )  # fmt: skip
    return wait, events, rejections, feed


async def listening(feed: MemoryLiveFeed) -> None:
    await wait_for(lambda: feed.listeners() == 1, timeout_s=10, what="the wait listening")


async def stopped(feed: MemoryLiveFeed) -> None:
    await wait_for(lambda: feed.listeners() == 0, timeout_s=10, what="the wait stopped listening")


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
        await within(waiting, timeout_s=10, what="the announced wait")  # far below the safety poll
        await stopped(feed)  # the wait stopped listening


async def test_an_announcement_of_another_aggregate_does_not_end_the_wait() -> None:
    wait, events, _, feed = fed_waiter(safety_poll_s=3600)
    other = new_event("order", "o-2", "OrderPlaced", {"items": []}, version=1)
    await events.append([other])
    feed.announce([Outgoing.of(other)])
    with pytest.raises(NotYetStored) as behind:
        await wait.stored(REF, ReadAfter(1, None, wait_ms=50))
    assert behind.value.stored_version == 0  # the version last seen stored
    await stopped(feed)


class StallsAfterTheFirstHeadRead(MemoryEventStore):
    """A store whose every head read after the first stalls, as a loaded store's would."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = asyncio.Event()

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        if self.faults.calls["heads"] >= 1:
            self.stalled.set()
            await asyncio.Event().wait()  # never answered; the read's bound ends it
        return await super().heads(aggregates)


async def test_a_504_names_the_version_the_read_saw_though_its_wait_learned_nothing() -> None:
    events = StallsAfterTheFirstHeadRead()
    for version, kind in enumerate(("OrderPlaced", "OrderPaid"), start=1):
        await events.append([new_event("order", "o-1", kind, {}, version=version)])
    wait, _, _, _ = bounded_waiter(events=events)
    with pytest.raises(NotYetStored) as behind:
        await wait.stored(REF, ReadAfter(9, None, wait_ms=50))
    assert events.stalled.is_set()  # the wait's own check never answered
    assert (behind.value.stored_version, behind.value.wanted_version) == (2, 9)


async def test_a_lost_announcement_is_caught_by_the_safety_poll() -> None:
    wait, events, _, feed = fed_waiter(safety_poll_s=0.02)
    waiting = asyncio.create_task(wait.stored(REF, ReadAfter(None, "c-1", wait_ms=30_000)))
    await listening(feed)
    feed.lose_next(1)
    await store_and_announce(events, feed, "c-1")
    assert feed.announced == 1
    await within(waiting, timeout_s=10, what="the safety poll")  # 200, though nobody heard
    await stopped(feed)


async def test_a_reconnect_of_the_feed_makes_the_wait_read_the_store() -> None:
    wait, events, _, feed = fed_waiter(safety_poll_s=3600)
    waiting = asyncio.create_task(wait.stored(REF, ReadAfter(1, None, wait_ms=30_000)))
    await listening(feed)
    feed.lose_next(1)
    await store_and_announce(events, feed, "c-1")
    feed.reconnect()  # "you may have missed announcements": the wait checks the store
    await within(waiting, timeout_s=10, what="the wait to read the store")


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
    await stopped(feed)


async def test_a_feed_that_fails_falls_back_to_polling_the_store() -> None:
    events, rejections = MemoryEventStore(), MemoryRejections()

    async def broken() -> LiveFeed:
        raise ConnectionError("no feed here")

    wait = WriteWaiter(
        domains=default_domains(), events=events, rejections=rejections, feed=broken,
        bounds=WaitBounds(safety_poll_s=3600),
    )  # fmt: skip
    waiting = asyncio.create_task(wait.stored(REF, ReadAfter(1, None, wait_ms=30_000)))
    await events.append([new_event("order", "o-1", "OrderPlaced", {"items": []}, version=1)])
    await within(waiting, timeout_s=10, what="the short backoff")  # not the hour-long poll


def bounded_waiter(
    *,
    max_waiters: int = 100,
    max_per_principal: int = 10,
    safety_poll_s: float = 3600,
    events: MemoryEventStore | None = None,
) -> tuple[WriteWaiter, MemoryEventStore, MemoryLiveFeed, CollectorRegistry]:
    events = events or MemoryEventStore()
    feed, registry = MemoryLiveFeed(), CollectorRegistry()
    metrics = create_ryw_metrics(registry)

    async def the_feed() -> LiveFeed:
        return feed

    wait = WriteWaiter(
        domains=default_domains(), events=events, rejections=MemoryRejections(), feed=the_feed,
        bounds=WaitBounds(safety_poll_s, max_waiters, max_per_principal), metrics=metrics,
    )  # fmt: skip
    return wait, events, feed, registry


def waiting(
    wait: WriteWaiter, principal: str, ref: AggregateRef, n: int
) -> list[asyncio.Task[None]]:
    """``n`` reads of ``principal`` waiting for version 1 of ``ref`` (half a minute at most)."""
    of = wait.serving(Caller(principal))
    return [
        asyncio.create_task(of.stored(ref, ReadAfter(1, None, wait_ms=30_000))) for _ in range(n)
    ]


def refused_of(registry: CollectorRegistry, limit: str) -> float | None:
    return registry.get_sample_value("eventfleet_ryw_refused_total", {"limit": limit})


async def ended(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_past_its_bound_a_principal_is_refused_429_and_another_still_waits() -> None:
    wait, _, _, registry = bounded_waiter(max_per_principal=3)
    alice = waiting(wait, "alice", REF, 3)
    await wait_for(lambda: wait.waiting_of("alice") == 3, timeout_s=10, what="alice waiting")
    with pytest.raises(TooManyWaiters) as refused:
        await wait.serving(Caller("alice")).stored(REF, ReadAfter(1, None, wait_ms=30_000))
    answer = failure(refused.value)
    assert answer.status == 429 and answer.body["error"] == "too_many_waiters"
    assert answer.body["limit"] == "principal" and answer.body["retry_after_s"] == 1
    assert "EVENTFLEET_RYW_MAX_WAITERS_PER_PRINCIPAL" in answer.body["message"]
    assert wait.waiting_of("alice") == 3  # the refused read holds nothing
    bob = waiting(wait, "bob", REF, 1)
    await wait_for(lambda: wait.waiting_of("bob") == 1, timeout_s=10, what="bob waiting")
    assert wait.waiting == 4 and refused_of(registry, "principal") == 1
    await ended(alice + bob)
    assert wait.waiting == 0 and wait.watched == 0  # released, whatever ended them


async def test_past_the_process_bound_every_principal_is_refused() -> None:
    wait, _, _, registry = bounded_waiter(max_waiters=4, max_per_principal=3)
    tasks = waiting(wait, "alice", REF, 3) + waiting(wait, "bob", ("order", "o-2"), 1)
    await wait_for(lambda: wait.waiting == 4, timeout_s=10, what="four waiting")
    with pytest.raises(TooManyWaiters) as refused:
        await wait.serving(Caller("carol")).stored(REF, ReadAfter(1, None, wait_ms=30_000))
    assert refused.value.limit == "process" and "EVENTFLEET_RYW_MAX_WAITERS" in str(refused.value)
    assert refused_of(registry, "process") == 1
    assert registry.get_sample_value("eventfleet_ryw_waiters") == 4  # counted when scraped
    await ended(tasks)
    assert registry.get_sample_value("eventfleet_ryw_waiters") == 0


async def test_a_read_that_needs_no_wait_is_answered_at_the_bound_too() -> None:
    wait, events, _, _ = bounded_waiter(max_waiters=1, max_per_principal=1)
    await events.append([new_event("order", "o-9", "OrderPlaced", {"items": []}, version=1)])
    tasks = waiting(wait, "alice", REF, 1)
    await wait_for(lambda: wait.waiting == 1, timeout_s=10, what="one waiting")
    await wait.serving(Caller("alice")).stored(("order", "o-9"), ReadAfter(1, None, 30_000))
    await ended(tasks)


async def test_the_waiters_of_one_aggregate_share_one_store_check_per_interval() -> None:
    """Reads waiting (half a minute at most) while the store is polled for at least 25 intervals,
    then the event is stored: one check per interval for all of them, however slow the machine
    (no read's wait may end before every read is waiting)."""
    poll_s, many = 0.02, 200
    wait, events, feed, registry = bounded_waiter(
        max_waiters=1000, max_per_principal=1000, safety_poll_s=poll_s
    )
    reads = waiting(wait, "alice", REF, many)
    await wait_for(lambda: wait.waiting == many, timeout_s=20, what="every read waiting")
    before, started = events.faults.calls["heads"], time.monotonic()
    await wait_for(lambda: events.faults.calls["heads"] - before >= 25, timeout_s=20,
                   what="25 store checks")  # fmt: skip
    await events.append([new_event(REF[0], REF[1], "OrderPlaced", {"items": []}, version=1)])
    await within(asyncio.gather(*reads), timeout_s=20, what="each read answered")  # none failed
    checks, elapsed = events.faults.calls["heads"] - before, time.monotonic() - started
    # One check per interval for all of them (one per waiter would be `many` times that).
    assert checks <= elapsed / poll_s + 2, (checks, elapsed)
    assert feed.listeners() <= 1  # one listener for all of them, too
    counted = registry.get_sample_value("eventfleet_ryw_store_checks_total", {"read": "heads"})
    assert counted is not None and counted >= checks


async def test_the_waiters_of_many_aggregates_are_checked_in_one_read_per_round() -> None:
    poll_s, aggregates = 0.02, 100
    wait, events, feed, _ = bounded_waiter(
        max_waiters=1000, max_per_principal=1000, safety_poll_s=poll_s
    )
    of = wait.serving(Caller("alice"))
    reads = asyncio.gather(*(
        of.stored(("order", f"o-{n}"), ReadAfter(1, None, wait_ms=2000)) for n in range(aggregates)
    ), return_exceptions=True)  # fmt: skip
    await wait_for(lambda: wait.waiting == aggregates, timeout_s=10, what="every read waiting")
    await wait_for(lambda: feed.listeners() == aggregates, timeout_s=10, what="all listening")
    before, started = events.faults.calls["heads"], time.monotonic()
    await reads
    checks, elapsed = events.faults.calls["heads"] - before, time.monotonic() - started
    chunks = -(-aggregates // CHUNK)  # a round reads its aggregates in chunks
    assert checks <= chunks * (elapsed / poll_s + 2), (checks, elapsed)


async def test_an_announcement_wakes_every_waiter_of_the_aggregate_with_no_store_read() -> None:
    wait, events, feed, _ = bounded_waiter(max_per_principal=50)
    tasks = waiting(wait, "alice", REF, 20)
    await wait_for(lambda: wait.waiting == 20, timeout_s=10, what="twenty waiting")
    await listening(feed)
    await wait_for(lambda: wait.idle, timeout_s=10, what="the arrivals checked")
    before = events.faults.calls["heads"]
    await store_and_announce(events, feed, "c-1")
    await within(asyncio.gather(*tasks), timeout_s=10, what="every waiter woken")
    assert events.faults.calls["heads"] == before  # the announced event was enough
    await stopped(feed)


async def test_a_waiter_whose_client_left_is_released() -> None:
    wait, _, _, _ = bounded_waiter()
    left = False
    of = wait.serving(Caller("alice", lambda: left))
    read = asyncio.create_task(of.stored(REF, ReadAfter(1, None, wait_ms=30_000)))
    await wait_for(lambda: wait.waiting == 1, timeout_s=10, what="the read waiting")
    left = True  # the client closed its connection; nothing cancels the handler
    with pytest.raises(NotYetStored, match="the client of this read left"):
        await within(read, timeout_s=10, what="the sweep")  # each SWEEP_S
    assert wait.waiting == 0 and wait.watched == 0


async def test_a_store_that_fails_fails_the_waiters_as_it_would_an_unwaited_read() -> None:
    wait, events, _, _ = bounded_waiter(safety_poll_s=0.01)
    tasks = waiting(wait, "alice", REF, 3)
    await wait_for(lambda: wait.waiting == 3, timeout_s=10, what="three waiting")
    events.faults.down()
    answers = await within(
        asyncio.gather(*tasks, return_exceptions=True), timeout_s=10, what="every waiter failed"
    )
    assert [failure(a).status for a in answers if isinstance(a, EventfleetError)] == [503] * 3
    assert wait.waiting == 0


async def test_the_waiters_of_one_view_document_share_its_reads() -> None:
    poll_s, many = 0.02, 50
    wait, events, _, _ = bounded_waiter(
        max_waiters=1000, max_per_principal=1000, safety_poll_s=poll_s
    )
    await events.append([new_event("order", "o-1", "OrderPlaced", {"items": []}, version=1)])
    read: list[int] = []

    async def view_version() -> int:
        read.append(1)
        return 0  # the projection never folds it

    of = wait.serving(Caller("alice"))
    reads = asyncio.gather(*(
        of.in_view(REF, ReadAfter(1, None, wait_ms=400), view_version, view="orders")
        for _ in range(many)
    ), return_exceptions=True)  # fmt: skip
    await wait_for(lambda: wait.waiting == many, timeout_s=10, what="every read waiting")
    before, started = len(read), time.monotonic()
    answers = await reads
    checks, elapsed = len(read) - before, time.monotonic() - started
    assert all(isinstance(a, NotYetStored) and "the projection is behind" in str(a)
               for a in answers)  # fmt: skip
    # The backoff (2 ms doubling up to the interval), then once per interval: for all of them.
    assert checks <= math.log2(poll_s / FIRST_POLL_S) + 2 + elapsed / poll_s, (checks, elapsed)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"min_version": "1", "wait_ms": "-5"}, "must be a whole number"),
        ({"min_version": "1", "wait_ms": "1e3"}, "must be a whole number"),
        ({"min_version": "1", "wait_ms": "9" * 40}, "must be between 0 and 30000"),
        ({"min_version": "9" * 5000}, "must be between 1 and"),
        ({"min_version": "0007", "wait_ms": "00030001"}, "wait_ms=30001 must be between"),
        ({"min_version": "٣"}, "must be a whole number"),
    ],
)
def test_parse_refuses_what_is_no_bounded_whole_number(query: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        ReadAfter.parse(query)


class CountedEvents(MemoryEventStore):
    """The memory twin, recording how many aggregates each head lookup asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        self.asked.append(len(aggregates))
        return await super().heads(aggregates)


async def test_the_safety_net_reads_a_bounded_number_of_aggregates_a_tick() -> None:
    poll_s, aggregates, events = 0.05, 3 * SAFETY_PER_TICK, CountedEvents()
    wait, _, feed, _ = bounded_waiter(
        max_waiters=1000, max_per_principal=1000, safety_poll_s=poll_s, events=events
    )
    asked = events.asked
    of = wait.serving(Caller("alice"))
    reads = asyncio.gather(*(
        of.stored(("order", f"o-{n}"), ReadAfter(1, None, wait_ms=3000)) for n in range(aggregates)
    ), return_exceptions=True)  # fmt: skip
    await wait_for(lambda: feed.listeners() == aggregates, timeout_s=10, what="all listening")
    await wait_for(lambda: wait.idle, timeout_s=10, what="the arrivals checked")
    before, started = len(asked), time.monotonic()
    await reads
    rounds, elapsed = asked[before:], time.monotonic() - started
    assert rounds and max(rounds) <= CHUNK, rounds  # a few lookups at a time
    ticks = elapsed / poll_s + 2
    assert sum(rounds) <= SAFETY_PER_TICK * ticks, (sum(rounds), ticks)  # not all 192 a tick
