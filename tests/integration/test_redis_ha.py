"""The marker on Redis Sentinel and Redis Cluster, real processes, including a failover under load.

During a failover the marker keeps answering or answers "unavailable" (a 503 upstream); of
two conflicting requests for one aggregate it never accepts both.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import RedisCluster

from tests.redis_topologies import (
    HOST,
    ClusterSet,
    SentinelSet,
    _call,
)
from tests.waiting import wait_for, within
from topics.envelope import NEW_AGGREGATE
from topics.errors import ConfigError, MarkerUnavailable
from workers.adapters.redis import (
    SCRIPTS,
    RedisBatcher,
    RedisCommandMemory,
    RedisMarker,
    connect_redis,
)
from workers.adapters.redis.connect import RedisClient
from workers.devtools.embedded import free_port
from workers.metrics import create_metrics
from workers.ports import MarkRequest

TIMEOUT_MS = 500
"""The failover tests' deadline per Redis call: a dead master is noticed within it."""
LAYOUT_TIMEOUT_MS = 10_000
"""Where no fault is made and only the layout is checked: the first calls to a three-master
cluster (slot discovery, a script load on each master, 60 marks at once) can take longer than
500 ms with both cores busy, which the marker rightly answers as unavailable."""


def batcher_for(client: RedisClient, timeout_ms: int = TIMEOUT_MS) -> RedisBatcher:
    """One coalescing connection, as the fleet wires it (workers.runtime.compose)."""
    return RedisBatcher(
        client, scripts=SCRIPTS, timeout_ms=timeout_ms, latency=create_metrics().marker_latency
    )


@pytest.fixture
async def make_marker() -> AsyncIterator[Callable[..., RedisMarker]]:
    clients = []

    def make(url: str, timeout_ms: int = TIMEOUT_MS) -> RedisMarker:
        client = connect_redis(url, timeout_ms=timeout_ms)
        clients.append(client)
        prefix = f"t{uuid.uuid4().hex[:6]}:"
        # As the fleet wires it (workers.runtime.compose): a cluster keeps the new-aggregate
        # filter apart from the marks' slots.
        return RedisMarker(
            batcher_for(client, timeout_ms),
            prefix=prefix,
            ttl_s=600,
            cluster=isinstance(client, RedisCluster),
        )

    yield make
    for client in clients:
        await client.aclose()


def request(key: str, event_type: str, allowed: list[str], **kw: str) -> MarkRequest:
    return MarkRequest(key, event_type, str(uuid.uuid4()), allowed, **kw)  # type: ignore[arg-type]


async def answer(marker: RedisMarker, mark: MarkRequest) -> str:
    try:
        return (await marker.check_and_mark(mark)).status
    except MarkerUnavailable:
        return "unavailable"


class Load:
    """Places aggregates and sends each a conflicting pair, until stopped; records answers."""

    def __init__(self, marker: RedisMarker) -> None:
        self.marker = marker
        self.pairs: dict[str, list[str]] = {}
        self.answers: list[tuple[float, str]] = []
        self.stopping = False

    async def run(self) -> None:
        n = 0
        while not self.stopping:
            n += 1
            key = f"order:{n}"
            placed = await answer(
                self.marker, request(key, "OrderPlaced", ["none"], fallback=NEW_AGGREGATE)
            )
            self.answers.append((time.monotonic(), placed))
            if placed != "marked":
                await asyncio.sleep(0.01)  # a client backing off after a 503
                continue
            pair = await asyncio.gather(
                *(answer(self.marker, request(key, "OrderPaid", ["OrderPlaced"])) for _ in range(2))
            )
            self.pairs[key] = list(pair)
            self.answers.extend((time.monotonic(), status) for status in pair)

    def answered_since(self, moment: float) -> int:
        return sum(1 for at, status in self.answers if at > moment and status != "unavailable")


async def failover_under_load(
    marker: RedisMarker, kill: Callable[[], None], promoted: Callable[[], Awaitable[bool]]
) -> Load:
    load = Load(marker)
    task = asyncio.create_task(load.run())
    try:
        await wait_for(lambda: len(load.pairs) >= 50, timeout_s=20, what="load before the kill")
        killed_at = time.monotonic()
        kill()
        await wait_for(promoted, timeout_s=40, what="a replica promoted")
        await wait_for(
            lambda: load.answered_since(killed_at) >= 100, timeout_s=40, what="answers again"
        )
    finally:
        load.stopping = True
        await within(task, timeout_s=10, what="the load to stop")
    return load


def assert_no_conflicting_pair_accepted(load: Load) -> None:
    assert load.pairs, "no pair was tried"
    for key, pair in load.pairs.items():
        assert pair.count("marked") <= 1, f"{key}: both conflicting requests accepted: {pair}"
    statuses = Counter(status for _, status in load.answers)
    assert set(statuses) <= {"marked", "mine", "rejected", "missing", "unavailable"}, statuses
    assert statuses["rejected"] > 0  # conflicts were really decided, not only failed


async def test_the_marker_works_through_sentinel(
    sentinel_set: SentinelSet, make_marker: Callable[[str], RedisMarker]
) -> None:
    marker = make_marker(sentinel_set.url)
    assert await marker.ping()
    key = "order:s1"
    assert (
        await answer(marker, request(key, "OrderPlaced", ["none"], fallback=NEW_AGGREGATE))
        == "marked"
    )
    pair = await asyncio.gather(
        *(answer(marker, request(key, "OrderPaid", ["OrderPlaced"])) for _ in range(10))
    )
    assert sorted(pair) == ["marked"] + ["rejected"] * 9


async def test_a_sentinel_failover_under_load_never_accepts_a_conflicting_pair(
    sentinel_set: SentinelSet, make_marker: Callable[[str], RedisMarker]
) -> None:
    marker = make_marker(sentinel_set.url)
    old = sentinel_set.master.port

    async def promoted() -> bool:
        return await sentinel_set.master_port() != old

    load = await failover_under_load(marker, sentinel_set.master.kill, promoted)
    assert await sentinel_set.master_port() == sentinel_set.replica.port
    assert_no_conflicting_pair_accepted(load)


async def test_the_marker_works_on_a_three_master_cluster(
    cluster: ClusterSet, make_marker: Callable[..., RedisMarker]
) -> None:
    marker = make_marker(cluster.url, LAYOUT_TIMEOUT_MS)
    keys = [f"order:c{i}" for i in range(60)]
    placed = await asyncio.gather(
        *(answer(marker, request(k, "OrderPlaced", ["none"], fallback=NEW_AGGREGATE)) for k in keys)
    )
    assert set(placed) == {"marked"}
    # The keys spread over every master, and each aggregate's keys share one slot.
    owners = set()
    for key in keys:
        slot = await _call(cluster.masters[0].port, "CLUSTER", "KEYSLOT", "{" + key + "}")
        owners.add(int(str(slot)) * 3 // 16384)
    assert owners == {0, 1, 2}
    paid = request(keys[0], "OrderPaid", ["OrderPlaced"])
    assert await answer(marker, paid) == "marked"
    assert await answer(marker, paid) == "mine"  # a retry of the same event
    # The command memory's keys share the aggregate's slot too.
    client = connect_redis(cluster.url, timeout_ms=LAYOUT_TIMEOUT_MS)
    try:
        memory = RedisCommandMemory(batcher_for(client, LAYOUT_TIMEOUT_MS), prefix="cm:", ttl_s=60)
        assert await memory.claim(keys[1], "c-1", "e-1", "t-1") is None
        await memory.settle(keys[1], "c-1", b"answer")
        assert await memory.recall(keys[1], "c-1") is not None
        await memory.unknown(keys[2], "c-2", "e-2")  # by command and by event: one slot
        found = await memory.recall_event(keys[2], "e-2")
        assert found is not None and found.state == "unknown"
    finally:
        await client.aclose()
    # Claim and mark in one script: the command's key and the mark share the slot.
    claimed = request(keys[3], "OrderPaid", ["OrderPlaced"], command_id="c-3", token="t-3")
    assert await answer(marker, claimed) == "marked"
    await marker.mark_filter_ready()  # the run id of the master holding the filter
    assert await marker.filter_ready()


async def test_a_cluster_failover_under_load_never_accepts_a_conflicting_pair(
    cluster: ClusterSet, make_marker: Callable[[str], RedisMarker]
) -> None:
    marker = make_marker(cluster.url)
    victim, heir = cluster.masters[0], cluster.replicas[0]

    async def promoted() -> bool:
        return "myself,master" in str(await _call(heir.port, "CLUSTER", "NODES"))

    load = await failover_under_load(marker, victim.kill, promoted)
    assert_no_conflicting_pair_accepted(load)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://127.0.0.1:26379", "names no master"),
        ("redis+sentinel://:pw@127.0.0.1:26379/m/x", "must be a number"),
    ],
)
def test_a_sentinel_url_without_a_usable_master_is_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        connect_redis(url, timeout_ms=100)
    assert ":pw@" not in str(caught.value)


async def test_sentinels_that_do_not_answer_make_the_marker_unavailable_in_time() -> None:
    client = connect_redis(f"redis+sentinel://{HOST}:{free_port()}/m/0", timeout_ms=300)
    marker = RedisMarker(batcher_for(client, timeout_ms=300))
    started = time.monotonic()
    assert await answer(marker, request("order:x", "OrderPlaced", ["none"])) == "unavailable"
    assert not await marker.ping()
    assert time.monotonic() - started < 10  # bounded, not hung (a generous bound)
