"""The live feed: one contract, run on the in-memory twin and on real Redis Pub/Sub.

An announced stored event reaches every listener of its aggregate and of its type, decoded,
in the order announced; nobody else hears it; a stopped listener hears nothing more;
announcing never raises, also with nobody listening.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.waiting import wait_for
from topics.envelope import Event, new_event
from workers.adapters.memory import MemoryLiveFeed
from workers.adapters.redis import RedisLiveFeed
from workers.devtools.embedded import EmbeddedStack
from workers.ports import LiveChannel, LiveFeed, Outgoing


@pytest.fixture(params=["memory", "redis"])
async def feed(request: pytest.FixtureRequest, stack: EmbeddedStack) -> AsyncIterator[LiveFeed]:
    if request.param == "memory":
        made: LiveFeed = MemoryLiveFeed()
    else:
        made = RedisLiveFeed(stack.urls.redis_url, prefix=f"test-{uuid.uuid4().hex}:live:")
    yield made
    await made.close()


def stored(aggregate_id: str, version: int, aggregate_type: str = "order") -> Outgoing:
    return Outgoing.of(
        new_event(aggregate_type, aggregate_id, "OrderPlaced", {"n": version}, version=version)
    )


class Heard:
    def __init__(self) -> None:
        self.items: list[Event | None] = []

    def __call__(self, event: Event | None) -> None:
        self.items.append(event)

    def versions(self) -> list[int | None]:
        return [e.version if e is not None else None for e in self.items]


async def test_an_announced_event_reaches_its_aggregate_and_type_listeners_in_order(
    feed: LiveFeed,
) -> None:
    mine, type_wide, other = Heard(), Heard(), Heard()
    await feed.listen(LiveChannel("order", "o1"), mine)
    await feed.listen(LiveChannel("order"), type_wide)
    await feed.listen(LiveChannel("order", "o2"), other)
    await feed.listen(LiveChannel("orders", "o1"), other)  # a type whose name starts alike
    sent = [stored("o1", v) for v in (1, 2, 3)]
    feed.announce(sent)
    await wait_for(lambda: len(mine.items) == 3 and len(type_wide.items) == 3, timeout_s=5,
                   what="both listeners to hear three events")  # fmt: skip
    assert mine.versions() == [1, 2, 3] == type_wide.versions()
    first = mine.items[0]
    assert first is not None and first.aggregate_id == "o1" and first.data == {"n": 1}
    feed.announce([stored("o9", 1)])  # heard by the type listener only: proves the others idle
    await wait_for(lambda: len(type_wide.items) == 4, timeout_s=5, what="the type listener")
    assert other.items == [] and len(mine.items) == 3


async def test_a_stopped_listener_hears_nothing_more(feed: LiveFeed) -> None:
    stopped, kept = Heard(), Heard()
    listening = await feed.listen(LiveChannel("order", "o1"), stopped)
    await feed.listen(LiveChannel("order", "o1"), kept)
    feed.announce([stored("o1", 1)])
    await wait_for(lambda: len(stopped.items) == 1 and len(kept.items) == 1, timeout_s=5)
    await listening.stop()
    await listening.stop()  # twice is harmless
    feed.announce([stored("o1", 2)])
    await wait_for(lambda: len(kept.items) == 2, timeout_s=5, what="the kept listener")
    assert stopped.versions() == [1]


async def test_announcing_to_nobody_or_without_a_key_does_not_raise(feed: LiveFeed) -> None:
    feed.announce([stored("nobody", 1), Outgoing(None, b"not an envelope")])
    heard = Heard()
    await feed.listen(LiveChannel("order", "later"), heard)
    feed.announce([stored("later", 1)])
    await wait_for(lambda: len(heard.items) == 1, timeout_s=5)
    assert heard.versions() == [1]


async def test_a_closed_feed_takes_announcements_without_raising(feed: LiveFeed) -> None:
    await feed.close()
    feed.announce([stored("o1", 1)])


@pytest.fixture
async def own_redis(stack: EmbeddedStack) -> AsyncIterator[EmbeddedStack]:
    """A redis-server of this test's own, which it may pause."""
    async with EmbeddedStack(
        kafka_url=stack.urls.kafka_url, mongo_url=stack.urls.mongo_url, start_redis=True
    ) as own:
        yield own


async def test_a_paused_redis_is_noticed_and_every_listener_told_then_told_again(
    own_redis: EmbeddedStack,
) -> None:
    """Redis paused keeps the connection open: only the unanswered ping shows it is gone."""
    feed = RedisLiveFeed(own_redis.urls.redis_url, prefix=f"test-{uuid.uuid4().hex}:live:",
                         timeout_ms=300, health_check_s=0.2)  # fmt: skip
    heard = Heard()
    try:
        await feed.listen(LiveChannel("order", "o1"), heard)
        feed.announce([stored("o1", 1)])
        await wait_for(lambda: heard.versions() == [1], timeout_s=5, what="the first event")
        redis = own_redis.process("redis")
        redis.pause()
        try:
            await wait_for(lambda: None in heard.items, timeout_s=10, what="the feed to notice")
        finally:
            redis.resume()
        await wait_for(lambda: heard.items.count(None) >= 2, timeout_s=10,
                       what="resubscribed: told again")  # fmt: skip
        feed.announce([stored("o1", 2)])
        await wait_for(lambda: heard.versions()[-1:] == [2], timeout_s=10, what="events again")
    finally:
        await feed.close()


async def test_a_quiet_feed_is_kept_not_dropped_even_when_its_loop_is_busy(
    stack: EmbeddedStack,
) -> None:
    """Nothing announced for 40 health-check intervals while the event loop is busy at random
    (timers fire late, as in a loaded process): the pings keep the connection, no resync. A
    keeper that checked on a fixed beat skipped a ping when an answer came just after a beat,
    and then took the connection as lost (6 resyncs in this test)."""
    feed = RedisLiveFeed(stack.urls.redis_url, prefix=f"test-{uuid.uuid4().hex}:live:",
                         health_check_s=0.05)  # fmt: skip
    heard = Heard()
    busy = asyncio.create_task(keep_the_loop_busy(random.Random(7)))
    try:
        await feed.listen(LiveChannel("order", "o1"), heard)
        resyncs, pings_seen = feed.resyncs, feed.pings
        await wait_for(lambda: feed.pings >= pings_seen + 40, timeout_s=30, what="forty pings")
        assert feed.resyncs == resyncs and heard.items == []
    finally:
        busy.cancel()
        await feed.close()


async def keep_the_loop_busy(rng: random.Random) -> None:
    """Hold the event loop for up to 30 ms at a time, then let it run for up to as long."""
    while True:
        until = time.perf_counter() + rng.uniform(0, 0.03)
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(rng.uniform(0, 0.03))


async def test_many_batches_after_the_script_cache_is_flushed_arrive_whole_and_in_order(
    own_redis: EmbeddedStack,
) -> None:
    """The feed publishes a batch as one script call: a Redis that lost its scripts (SCRIPT
    FLUSH, a restart, a failover to a replica that never ran it) gets the script again and
    drops nothing; more than one batch (500) keeps the order announced."""
    from redis.asyncio import Redis

    feed = RedisLiveFeed(own_redis.urls.redis_url, prefix=f"test-{uuid.uuid4().hex}:live:")
    heard, admin = Heard(), Redis.from_url(own_redis.urls.redis_url)
    try:
        await feed.listen(LiveChannel("order", "o1"), heard)
        feed.announce([stored("o1", 1)])
        await wait_for(lambda: heard.versions() == [1], timeout_s=5, what="the first event")
        assert await admin.script_flush() is True
        feed.announce([stored("o1", v) for v in range(2, 1202)])
        await wait_for(lambda: len(heard.items) == 1201, timeout_s=10, what="1,201 events")
        assert heard.versions() == list(range(1, 1202)) and feed.dropped == 0
    finally:
        await admin.aclose()
        await feed.close()
