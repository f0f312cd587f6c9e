"""The live feed and the Redis event bus on Redis Sentinel and Redis Cluster, real processes.

The fleet takes one ``EVENTFLEET_REDIS_URL`` for the marker, the live feed and the bridge's
Redis bus; a Sentinel or Cluster URL must work for all three (it once failed to construct the
feed at all). Losing the node a feed listens on tells every listener it may have missed
something (so subscriptions read the store), and the feed hears announcements again once it
is on a node that answers: the new master after a Sentinel failover, another node of a
cluster.
"""

from __future__ import annotations

import uuid

import pytest

from tests.redis_topologies import ClusterSet, SentinelSet
from tests.waiting import wait_for
from topics.envelope import Event, new_event
from topics.errors import ConfigError
from workers.adapters.redis import RedisEventBus, RedisLiveFeed
from workers.bus import PullPolicy
from workers.ports import LiveChannel, Outgoing


def stored(aggregate_id: str, version: int) -> Event:
    return new_event("order", aggregate_id, "OrderPlaced", {"n": version}, version=version)


class Heard:
    def __init__(self) -> None:
        self.items: list[Event | None] = []

    def __call__(self, event: Event | None) -> None:
        self.items.append(event)

    def versions(self) -> list[int]:
        return [e.version for e in self.items if e is not None and e.version is not None]


def feed_on(url: str, prefix: str) -> RedisLiveFeed:
    return RedisLiveFeed(url, prefix=prefix, timeout_ms=500, health_check_s=0.3)


async def heard_after_the_fault(
    feed: RedisLiveFeed, listener: RedisLiveFeed, heard: Heard, aggregate_id: str
) -> int:
    """Once ``listener`` is subscribed again, announce one version through ``feed``; its
    publisher's first call after the fault may still go to the lost node and be dropped (Pub/Sub
    is at most once; subscribers read the store), and then it has moved on: the next version
    must be heard. Returns the version heard."""
    await wait_for(lambda: listener.reconnects >= 1, timeout_s=30,
                   what="the listening feed subscribed again")  # fmt: skip
    assert None in heard.items  # and its listeners were told they may have missed something
    version, dropped = max(heard.versions()) + 1, feed.dropped
    feed.announce([Outgoing.of(stored(aggregate_id, version))])
    await wait_for(lambda: version in heard.versions() or feed.dropped > dropped, timeout_s=10,
                   what=f"version {version} heard or dropped")  # fmt: skip
    if version not in heard.versions():
        version += 1
        feed.announce([Outgoing.of(stored(aggregate_id, version))])
        await wait_for(lambda: version in heard.versions(), timeout_s=10,
                       what=f"version {version} heard on the node the feed moved to")  # fmt: skip
    return version


async def test_the_feed_hears_announcements_through_sentinel_and_follows_a_failover(
    sentinel_set: SentinelSet,
) -> None:
    feed = feed_on(sentinel_set.url, f"test-{uuid.uuid4().hex}:live:")
    mine, type_wide = Heard(), Heard()
    try:
        await feed.listen(LiveChannel("order", "o1"), mine)
        await feed.listen(LiveChannel("order"), type_wide)
        feed.announce([Outgoing.of(stored("o1", v)) for v in (1, 2, 3)])
        await wait_for(lambda: mine.versions() == [1, 2, 3] == type_wide.versions(),
                       timeout_s=10, what="three events through the Sentinel master")  # fmt: skip
        assert None not in mine.items

        old = sentinel_set.master.port
        sentinel_set.master.kill()
        await wait_for(lambda: None in mine.items, timeout_s=15, what="the lost master noticed")

        async def promoted() -> bool:
            return await sentinel_set.master_port() != old

        await wait_for(promoted, timeout_s=30, what="the Sentinels to promote the replica")
        assert await heard_after_the_fault(feed, feed, mine, "o1") in (4, 5)
        assert mine.versions()[:3] == [1, 2, 3]
    finally:
        await feed.close()


async def test_the_feed_works_on_a_cluster_and_moves_to_another_node_when_its_node_dies(
    cluster: ClusterSet,
) -> None:
    prefix = f"test-{uuid.uuid4().hex}:live:"
    feed = feed_on(cluster.url, prefix)
    listener = feed_on(cluster.url, prefix)  # another process's, on its own connections
    heard = Heard()
    try:
        # Aggregates in every slot range: classic Pub/Sub reaches every node of a cluster.
        ids = [f"o{i}" for i in range(12)]
        for aggregate_id in ids:
            await listener.listen(LiveChannel("order", aggregate_id), heard)
        feed.announce([Outgoing.of(stored(a, 1)) for a in ids])
        await wait_for(lambda: len(heard.versions()) == len(ids), timeout_s=10,
                       what="an event of every aggregate across the cluster")  # fmt: skip
        assert {e.aggregate_id for e in heard.items if e is not None} == set(ids)

        cluster.masters[0].kill()  # the first node of the URL: where both feeds started
        await wait_for(lambda: None in heard.items, timeout_s=15, what="the lost node noticed")
        assert await heard_after_the_fault(feed, listener, heard, "o0") in (2, 3)
    finally:
        await feed.close()
        await listener.close()


async def carried_by_the_redis_bus(url: str) -> None:
    # 10 s a call: a cluster's first call discovers its slots (over 1 s in a full run on 2
    # cores); the bus's bound is for a Redis that does not answer, which none here is.
    bus = RedisEventBus(url, stream=f"test-{uuid.uuid4().hex}.events.stored",
                        pull=PullPolicy(wait_ms=100), timeout_ms=10_000)  # fmt: skip
    got: list[Event] = []

    async def handler(event: Event) -> None:
        got.append(event)

    try:
        await bus.subscribe("OrderPlaced", handler)
        sent = stored("b1", 1)
        await bus.publish(sent)
        await wait_for(lambda: [e.id for e in got] == [sent.id], timeout_s=10,
                       what="the event through the bus")  # fmt: skip
    finally:
        await bus.close()


async def test_the_redis_bus_carries_events_through_sentinel(sentinel_set: SentinelSet) -> None:
    await carried_by_the_redis_bus(sentinel_set.url)


async def test_the_redis_bus_carries_events_on_a_cluster(cluster: ClusterSet) -> None:
    await carried_by_the_redis_bus(cluster.url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://127.0.0.1:26379", "names no master"),
        ("redis+sentinel://:pw@127.0.0.1:26379/m/x", "must be a number"),
    ],
)
def test_a_feed_on_a_sentinel_url_without_a_usable_master_is_refused_clearly(
    url: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        RedisLiveFeed(url, prefix="test:")
