"""Live subscriptions on the memory twins: catch-up then live, each event once and in version
order, whatever the feed loses, repeats or reorders; slow clients closed with their position."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from tests.waiting import wait_for
from topics.envelope import Event, new_event
from topics.errors import InvalidInput
from workers.adapters.memory import MemoryEventStore, MemoryLiveFeed, MemoryStream
from workers.ports import Outgoing
from workers.roles.read.live import (
    AggregateSubscription,
    Limiter,
    LiveLimits,
    SlowSubscriber,
    TooManySubscriptions,
    TypeSubscription,
    parse_position,
    position_token,
)

REF = ("order", "o1")


def event(version: int, aggregate_id: str = "o1") -> Event:
    return new_event("order", aggregate_id, "OrderNoted", {"n": version}, version=version)


async def store_and_announce(
    store: MemoryEventStore, feed: MemoryLiveFeed, versions: range, *, announce: bool = True
) -> list[Event]:
    events = [event(v) for v in versions]
    await store.append(events)
    if announce:
        feed.announce([Outgoing.of(e) for e in events])
    return events


class Client:
    """Reads a subscription in the background and records what it got."""

    def __init__(self, subscription: AggregateSubscription) -> None:
        self.subscription = subscription
        self.got: list[int] = []
        self.heartbeats = 0
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for batch in self.subscription.batches():
                if not batch:
                    self.heartbeats += 1
                self.got.extend(e.version or 0 for e in batch)
        except Exception as e:
            self.error = e

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[MemoryEventStore, MemoryLiveFeed]]:
    yield MemoryEventStore(), MemoryLiveFeed()


def subscribe(
    store: MemoryEventStore, feed: MemoryLiveFeed, after: int = 0, **limits: float
) -> AggregateSubscription:
    return AggregateSubscription(
        feed=feed,
        store=store,
        aggregate=REF,
        after_version=after,
        limits=LiveLimits(**limits),  # type: ignore[arg-type]
    )


async def test_catch_up_after_a_version_then_live_events_each_once_in_order(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    await store_and_announce(store, feed, range(1, 6))
    client = Client(subscribe(store, feed, after=2, page=2))
    await wait_for(lambda: client.got == [3, 4, 5], timeout_s=5, what="the catch-up")
    await wait_for(lambda: feed.listeners() == 1, timeout_s=5)
    await store_and_announce(store, feed, range(6, 9))
    feed.announce([Outgoing.of(event(7))])  # a repeat
    await store_and_announce(store, feed, range(9, 10))
    await wait_for(lambda: client.got[-1:] == [9], timeout_s=5, what="the live events")
    assert client.got == [3, 4, 5, 6, 7, 8, 9]
    await client.stop()
    assert feed.listeners() == 0  # a closed connection stops listening


async def test_a_lost_announcement_is_read_from_the_store_before_anything_newer(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    client = Client(subscribe(store, feed))
    await wait_for(lambda: feed.listeners() == 1, timeout_s=5)
    await store_and_announce(store, feed, range(1, 3))
    feed.lose_next(2)
    await store_and_announce(store, feed, range(3, 5))  # both lost
    await store_and_announce(store, feed, range(5, 6))  # 5 shows the gap
    await wait_for(lambda: len(client.got) == 5, timeout_s=5, what="five events")
    assert client.got == [1, 2, 3, 4, 5]


async def test_a_lost_last_announcement_is_found_at_the_heartbeat(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    client = Client(subscribe(store, feed, heartbeat_s=0.05))
    await wait_for(lambda: feed.listeners() == 1, timeout_s=5)
    feed.lose_next(1)
    await store_and_announce(store, feed, range(1, 2))
    await wait_for(lambda: client.got == [1], timeout_s=5, what="the heartbeat's store read")
    assert client.heartbeats >= 1


async def test_a_feed_reconnect_reads_what_was_stored_meanwhile(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    client = Client(subscribe(store, feed))
    await wait_for(lambda: feed.listeners() == 1, timeout_s=5)
    await store_and_announce(store, feed, range(1, 4), announce=False)  # the feed was down
    feed.reconnect()
    await wait_for(lambda: client.got == [1, 2, 3], timeout_s=5, what="the resync")


async def test_live_events_announced_out_of_order_are_given_in_version_order(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    client = Client(subscribe(store, feed))
    await wait_for(lambda: feed.listeners() == 1, timeout_s=5)
    events = await store_and_announce(store, feed, range(1, 4), announce=False)
    feed.announce([Outgoing.of(e) for e in reversed(events)])
    await wait_for(lambda: len(client.got) == 3, timeout_s=5)
    assert client.got == [1, 2, 3]


async def test_a_slow_client_is_closed_with_the_position_to_resume_from(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    subscription = subscribe(store, feed, buffer_events=3)
    batches = subscription.batches()
    assert await anext(batches) == []  # caught up: nothing stored yet
    await store_and_announce(store, feed, range(1, 2))
    assert [e.version for e in await anext(batches)] == [1]
    await store_and_announce(store, feed, range(2, 7))  # the client reads nothing meanwhile
    with pytest.raises(SlowSubscriber) as raised:
        await anext(batches)
    assert raised.value.after_version == 1 and "after_version=1" in str(raised.value)
    await batches.aclose()
    assert feed.listeners() == 0
    resumed = Client(subscribe(store, feed, after=raised.value.after_version))
    await wait_for(lambda: resumed.got == [2, 3, 4, 5, 6], timeout_s=5, what="the resume")


async def test_falling_behind_during_the_catch_up_is_not_slowness(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    await store_and_announce(store, feed, range(1, 5))
    subscription = subscribe(store, feed, buffer_events=2, page=2)
    batches = subscription.batches()
    assert [e.version for e in await anext(batches)] == [1, 2]
    await store_and_announce(store, feed, range(5, 10))  # overflows while catching up
    got: list[int] = []
    while len(got) < 7:
        got.extend(e.version or 0 for e in await anext(batches))
    assert got == [3, 4, 5, 6, 7, 8, 9]
    await batches.aclose()


def test_the_limiter_counts_per_process_and_per_principal() -> None:
    limiter = Limiter(per_process=3, per_principal=2)
    limiter.acquire("ann")
    limiter.acquire("ann")
    with pytest.raises(TooManySubscriptions) as by_principal:
        limiter.acquire("ann")
    assert by_principal.value.limit == "principal"
    limiter.acquire("bob")
    with pytest.raises(TooManySubscriptions) as by_process:
        limiter.acquire("cid")
    assert by_process.value.limit == "process"
    limiter.release("ann")
    limiter.acquire("cid")
    limiter.release("nobody")  # a release without an acquire never goes negative
    assert limiter.total == 3


def stored_record(aggregate_type: str, aggregate_id: str, version: int) -> Outgoing:
    return Outgoing.of(
        new_event(aggregate_type, aggregate_id, "Noted", {"n": version}, version=version)
    )


async def test_a_type_subscription_gives_the_types_events_once_and_resumes_from_its_ids() -> None:
    stream = MemoryStream(partitions={"stored": 3})
    await stream.produced.send_many("stored", [
        stored_record("order", "o1", 1), stored_record("cart", "c1", 1),
        stored_record("order", "o2", 1), stored_record("order", "o1", 2),
        stored_record("order", "o1", 2),  # a repeated copy (a republish)
        Outgoing(b"order:o3", b"not an envelope"),
    ])  # fmt: skip
    subscription = TypeSubscription(
        tail=stream, topic="stored", aggregate_type="order", after={},
        limits=LiveLimits(heartbeat_s=0.05),
    )  # fmt: skip
    batches = subscription.batches()
    got: list[tuple[str, int | None, str]] = []
    while len(got) < 3:
        got.extend(
            (e.aggregate_id, e.version, subscription.tokens[e.id]) for e in await anext(batches)
        )
    assert await anext(batches) == [] and subscription.live  # caught up: quiet
    await batches.aclose()
    assert sorted((a, v) for a, v, _ in got) == [("o1", 1), ("o1", 2), ("o2", 1)]
    resume_at = next(token for a, v, token in got if (a, v) == ("o1", 1))
    resumed = TypeSubscription(
        tail=stream, topic="stored", aggregate_type="order", after=parse_position(resume_at),
        limits=LiveLimits(heartbeat_s=0.05),
    )  # fmt: skip
    more = resumed.batches()
    later: list[tuple[str, int | None]] = []
    for _ in range(20):
        batch = await anext(more)
        if not batch:
            break
        later.extend((e.aggregate_id, e.version) for e in batch)
    await more.aclose()
    assert ("o1", 1) not in later and ("o1", 2) in later  # what follows o1 v1 in its partition


@pytest.mark.parametrize(
    "raw", ["x", "0:", ":1", "0:1,0:2", "0:-1", "0:1;1:2", "1:" + "9" * 19, "0:\u00b2", "\u0663:1"]
)
def test_a_malformed_position_is_refused_with_its_form(raw: str) -> None:
    with pytest.raises(InvalidInput, match="<partition>:<next offset>"):
        parse_position(raw)


def test_a_position_round_trips_through_its_token() -> None:
    assert parse_position(position_token({2: 7, 0: 15})) == {0: 15, 2: 7}
    assert parse_position("") == {} and position_token({}) == ""


class Pushes:
    """A transport's push: takes what it is offered until told to refuse (a full socket)."""

    def __init__(self) -> None:
        self.taken: list[int] = []
        self.refusing = False

    def __call__(self, event: Event) -> bool:
        if self.refusing:
            return False
        self.taken.append(event.version or 0)
        return True


async def test_an_idle_subscription_hands_the_next_live_events_to_its_push(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    await store_and_announce(store, feed, range(1, 3))
    subscription = subscribe(store, feed)
    pushes = subscription.push = Pushes()
    client = Client(subscription)
    await wait_for(lambda: client.got == [1, 2], timeout_s=5, what="the catch-up by batches")
    await wait_for(lambda: subscription._waiter is not None, timeout_s=5, what="it to idle")
    await store_and_announce(store, feed, range(3, 6))
    feed.announce([Outgoing.of(event(4))])  # a repeat is dropped, not pushed
    assert pushes.taken == [3, 4, 5] and subscription.position == 5
    assert client.got == [1, 2]  # none of them went through the batches
    await client.stop()


async def test_a_refused_push_leaves_the_event_to_the_batches_and_the_order_holds(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    subscription = subscribe(store, feed)
    pushes = subscription.push = Pushes()
    client = Client(subscription)
    await wait_for(lambda: subscription._waiter is not None, timeout_s=5, what="it to idle")
    await store_and_announce(store, feed, range(1, 2))
    pushes.refusing = True
    await store_and_announce(store, feed, range(2, 3))
    assert pushes.taken == [1] and [e.version for e in subscription._pending] == [2]  # waits
    pushes.refusing = False
    feed.announce([Outgoing.of(event(3))])  # heard before the batches ran: waits behind 2
    assert pushes.taken == [1] and [e.version for e in subscription._pending] == [2, 3]
    await wait_for(lambda: client.got == [2, 3], timeout_s=5, what="2 and 3 by the batches")
    await wait_for(lambda: subscription._waiter is not None, timeout_s=5, what="idle again")
    await store_and_announce(store, feed, range(4, 5))
    assert pushes.taken == [1, 4] and client.got == [2, 3]
    await client.stop()


async def test_a_gap_is_read_from_the_store_before_push_takes_anything_newer(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    subscription = subscribe(store, feed)
    pushes = subscription.push = Pushes()
    client = Client(subscription)
    await wait_for(lambda: subscription._waiter is not None, timeout_s=5, what="it to idle")
    await store_and_announce(store, feed, range(1, 2))
    feed.lose_next(1)
    await store_and_announce(store, feed, range(2, 4))  # 2 lost: 3 shows the gap
    await wait_for(lambda: client.got == [2, 3], timeout_s=5, what="the gap read")
    await wait_for(lambda: subscription._waiter is not None, timeout_s=5, what="idle again")
    await store_and_announce(store, feed, range(4, 5))
    assert pushes.taken == [1, 4] and client.got == [2, 3]
    await client.stop()


async def test_a_client_that_takes_no_pushes_is_closed_past_its_buffer_at_the_last_given(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    subscription = subscribe(store, feed, buffer_events=3)
    pushes = subscription.push = Pushes()
    batches = subscription.batches()
    assert await anext(batches) == []  # caught up
    waiting = asyncio.ensure_future(anext(batches))
    await wait_for(lambda: subscription._waiter is not None, timeout_s=5, what="it to idle")
    await store_and_announce(store, feed, range(1, 3))
    pushes.refusing = True  # its socket is full from here on
    feed.announce([Outgoing.of(event(v)) for v in range(3, 8)])  # 3 wait, then it is full
    with pytest.raises(SlowSubscriber) as raised:
        await waiting
    assert raised.value.after_version == 2 and pushes.taken == [1, 2]  # 3.. are in the store
    await batches.aclose()
    assert feed.listeners() == 0


async def test_a_quiet_subscription_with_a_push_still_gets_its_heartbeat(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    store, feed = setup
    subscription = subscribe(store, feed, heartbeat_s=0.05)
    subscription.push = Pushes()
    client = Client(subscription)
    await wait_for(lambda: subscription._waiter is not None, timeout_s=5, what="it to idle")
    feed.lose_next(1)
    await store_and_announce(store, feed, range(1, 2))  # lost, and nothing follows it
    await wait_for(lambda: client.got == [1], timeout_s=5, what="the heartbeat's store read")
    assert client.heartbeats >= 1
    await client.stop()


async def test_a_batch_cut_short_before_it_is_given_out_is_not_in_the_resume_position(
    setup: tuple[MemoryEventStore, MemoryLiveFeed],
) -> None:
    """The position a client is told to resume from counts only what was yielded (or pushed):
    a read cancelled while its events were being opened (a credential's expiry) gives none."""
    store, feed = setup
    await store_and_announce(store, feed, range(1, 4), announce=False)
    opening = asyncio.Event()
    hold = asyncio.Event()

    async def slow_open(events: Sequence[Event]) -> list[Event]:
        opening.set()
        await hold.wait()
        return list(events)

    subscription = AggregateSubscription(
        feed=feed, store=store, aggregate=REF, after_version=1,
        limits=LiveLimits(buffer_events=10, heartbeat_s=60), open_events=slow_open,
    )  # fmt: skip
    batches = subscription.batches()
    reading = asyncio.create_task(batches.__anext__())
    await opening.wait()
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    assert subscription.position == 3 and subscription.resume == {"after_version": 1}
    await batches.aclose()
