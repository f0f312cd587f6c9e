"""Read-your-writes waiters on the real MongoDB protocol and real Redis Pub/Sub: many waiters of
one aggregate cost one store check per interval, the feed wakes them, a refusal is found.

The store is the real one with its reads counted (a subclass, no mock); the feed is the real
Redis live feed, announcing as the appender does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tests.waiting import wait_for, within
from topics.envelope import decode, derived_event_id, new_event
from workers.adapters.mongo import MongoEventStore, connect, database
from workers.adapters.mongo.stores import MongoRejections
from workers.adapters.redis import RedisLiveFeed
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains import default_domains
from workers.http.ryw import (
    CHUNK,
    MAX_WAIT_MS,
    Caller,
    ReadAfter,
    RefusedAtStore,
    WaitBounds,
    WriteWaiter,
)
from workers.ports import AggregateRef, Head, LiveFeed, Outgoing, Rejection


class CountedEvents(MongoEventStore):
    """The Mongo event store, counting its head lookups: calls and aggregates asked."""

    calls = 0
    asked = 0

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        self.calls += 1
        self.asked += len(aggregates)
        return await super().heads(aggregates)


@dataclass
class Stores:
    events: CountedEvents
    rejections: MongoRejections
    feed: RedisLiveFeed

    def waiter(self, *, poll_s: float, with_feed: bool = True) -> WriteWaiter:
        async def the_feed() -> LiveFeed:
            return self.feed

        return WriteWaiter(
            domains=default_domains(), events=self.events, rejections=self.rejections,
            feed=the_feed if with_feed else None,
            bounds=WaitBounds(safety_poll_s=poll_s, max_waiters=10_000, max_per_principal=10_000),
        )  # fmt: skip


@pytest.fixture
async def stores(stack: EmbeddedStack, unique_name: str) -> AsyncIterator[Stores]:
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    db = database(client, unique_name)
    events = CountedEvents(db)
    await events.ensure_indexes()
    feed = RedisLiveFeed(stack.urls.redis_url, prefix=f"test-{uuid.uuid4().hex}:live:")
    try:
        yield Stores(events, MongoRejections(db), feed)
    finally:
        await feed.close()
        await client.drop_database(unique_name)
        await client.close()


def placed(order: str, command_id: str) -> Outgoing:
    return Outgoing.of(new_event(
        "order", order, "OrderPlaced", {"items": []}, version=1,
        id=derived_event_id("order", order, command_id),
    ))  # fmt: skip


async def test_many_waiters_of_one_aggregate_cost_one_store_check_per_interval(
    stores: Stores,
) -> None:
    poll_s, many = 0.1, 300
    wait = stores.waiter(poll_s=poll_s)
    order = f"o-{uuid.uuid4().hex[:8]}"
    of = wait.serving(Caller("alice"))
    calls, started = stores.events.calls, time.monotonic()
    # wait_ms is no bound on how fast the reads come: each ends once its event is announced.
    reads = asyncio.gather(*(
        of.stored(("order", order), ReadAfter(1, None, wait_ms=MAX_WAIT_MS)) for _ in range(many)
    ))  # fmt: skip
    await wait_for(lambda: wait.waiting == many, timeout_s=20, what="every read waiting")
    assert wait.watched == 1
    # Coming, they shared one look at the store (per read, `many`), then a round for their
    # arrival, one once the feed confirmed, and the safety net's.
    came = stores.events.calls - calls
    assert came <= (time.monotonic() - started) / poll_s + 3, came
    calls, asked, started = stores.events.calls, stores.events.asked, time.monotonic()
    await wait_for(lambda: stores.events.calls - calls >= 5, timeout_s=20, what="5 safety checks")
    await stores.events.append([decode(placed(order, "c-1").value)])
    stores.feed.announce([placed(order, "c-1")])  # as the appender does, once stored
    await within(reads, timeout_s=20, what="every read answered")
    calls, asked = stores.events.calls - calls, stores.events.asked - asked
    elapsed = time.monotonic() - started
    # Per waiter it would be `many` lookups an interval; shared, one (and the feed's
    # confirmation, if it came late), whatever `many` is.
    assert calls <= elapsed / poll_s + 2, (calls, elapsed)
    assert asked == calls  # each check asked for the one aggregate
    assert wait.waiting == 0 and wait.watched == 0


async def test_waiters_of_many_aggregates_are_checked_together(stores: Stores) -> None:
    poll_s, aggregates, each = 0.1, 40, 5
    wait = stores.waiter(poll_s=poll_s)
    run = uuid.uuid4().hex[:8]
    orders = [f"o-{run}-{n}" for n in range(aggregates)]
    of = wait.serving(Caller("alice"))
    reads = asyncio.gather(*(
        of.stored(("order", orders[n % aggregates]), ReadAfter(1, None, wait_ms=MAX_WAIT_MS))
        for n in range(aggregates * each)
    ))  # fmt: skip
    await wait_for(lambda: wait.waiting == aggregates * each, timeout_s=20, what="all waiting")
    assert wait.watched == aggregates
    await wait_for(lambda: wait.idle, timeout_s=20, what="the arrivals checked")
    calls, asked, started = stores.events.calls, stores.events.asked, time.monotonic()
    await wait_for(lambda: stores.events.calls - calls >= 3 * CHUNK, timeout_s=20, what="checks")
    records = [placed(order, "c-1") for order in orders]
    await stores.events.append([decode(record.value) for record in records])
    stores.feed.announce(records)
    await within(reads, timeout_s=20, what="every read answered")
    calls, asked = stores.events.calls - calls, stores.events.asked - asked
    rounds = (time.monotonic() - started) / poll_s + 1
    chunks = -(-aggregates // CHUNK)  # a round reads its aggregates a few at a time
    assert calls <= chunks * rounds, (calls, rounds)  # not one read per waiter (200)
    assert asked <= aggregates * rounds, (asked, rounds)  # each at most once an interval


async def test_a_waiter_is_woken_by_the_feed_with_the_store_checked_hourly(
    stores: Stores,
) -> None:
    wait = stores.waiter(poll_s=3600)
    order = f"o-{uuid.uuid4().hex[:8]}"
    by_version = asyncio.create_task(
        wait.stored(("order", order), ReadAfter(1, None, wait_ms=30_000))
    )
    by_command = asyncio.create_task(
        wait.stored(("order", order), ReadAfter(None, "c-1", wait_ms=30_000))
    )
    await wait_for(lambda: wait.waiting == 2, timeout_s=20, what="both waiting")
    await wait_for(lambda: wait.idle, timeout_s=20, what="subscribed and checked")
    record = placed(order, "c-1")
    event = new_event(
        "order", order, "OrderPlaced", {"items": []}, version=1,
        id=derived_event_id("order", order, "c-1"),
    )  # fmt: skip
    await stores.events.append([event])
    calls = stores.events.calls
    stores.feed.announce([record])  # as the appender does, once stored
    await within(asyncio.gather(by_version, by_command), timeout_s=20, what="both reads answered")
    assert stores.events.calls == calls  # the announced event was enough: no store read
    assert wait.waiting == 0


async def test_without_a_feed_the_shared_check_finds_the_event(stores: Stores) -> None:
    wait = stores.waiter(poll_s=0.05, with_feed=False)
    order = f"o-{uuid.uuid4().hex[:8]}"
    reads = [
        asyncio.create_task(wait.stored(("order", order), ReadAfter(1, None, wait_ms=30_000)))
        for _ in range(20)
    ]
    await wait_for(lambda: wait.waiting == 20, timeout_s=20, what="all waiting")
    await stores.events.append([new_event("order", order, "OrderPlaced", {"items": []}, version=1)])
    await within(asyncio.gather(*reads), timeout_s=20, what="every read answered")


async def test_a_command_refused_by_the_store_while_waited_on_is_a_refusal(
    stores: Stores,
) -> None:
    wait = stores.waiter(poll_s=0.05)
    order = f"o-{uuid.uuid4().hex[:8]}"
    read = asyncio.create_task(wait.stored(("order", order), ReadAfter(None, "c-7", 30_000)))
    await wait_for(lambda: wait.waiting == 1, timeout_s=20, what="the read waiting")
    event_id = derived_event_id("order", order, "c-7")
    await stores.rejections.record([Rejection(
        event_id, "order", order, "OrderShipped", "transition_rejected_at_store",
        "OrderShipped may not follow OrderPlaced.", "c-7", datetime.now(UTC),
    )])  # fmt: skip
    with pytest.raises(RefusedAtStore) as refused:
        await within(read, timeout_s=20, what="the read refused")
    assert refused.value.reason == "transition_rejected_at_store"
    assert wait.waiting == 0
