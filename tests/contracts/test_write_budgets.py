"""Write budgets: one contract, run on the in-memory twin and on real Redis (issue 46).

A principal's bucket starts full (``burst`` writes), refills at ``rate_per_s`` on the backend's
clock, never above ``burst``; a take over it answers the milliseconds until a write is there and
takes nothing; principals do not share buckets; two clients (two commands processes) share one
bucket per principal, atomically; a bucket is forgotten once full again. The marker takes the
write in its own call (``MarkRequest.budget``): over budget, nothing is claimed or marked.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tests.waiting import wait_for
from topics.envelope import NEW_AGGREGATE
from topics.errors import MarkerUnavailable
from workers.adapters.memory import MemoryCommandMemory, MemoryMarker, MemoryWriteBudgets
from workers.adapters.redis import (
    SCRIPTS,
    RedisBatcher,
    RedisCommandMemory,
    RedisMarker,
    RedisWriteBudgets,
)
from workers.devtools.embedded import EmbeddedStack
from workers.metrics import create_metrics
from workers.ports import Budget, BudgetDraw, CommandMemory, Marker, MarkRequest, WriteBudgets

SLOW = Budget(rate_per_s=1, burst=3)
"""A second per write: nothing refills within a test's few milliseconds."""


@dataclass
class Side:
    """Two clients of one backend's budgets, and a marker and memory on the first."""

    one: WriteBudgets
    other: WriteBudgets
    marker: Marker
    memory: CommandMemory
    redis: Redis | None
    prefix: str


@pytest.fixture(params=["memory", "redis", "redis-cluster-calls"])
async def side(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Side]:
    if request.param == "memory":
        budgets = MemoryWriteBudgets()
        marker = MemoryMarker(budgets=budgets)
        memory = MemoryCommandMemory(records=marker.records)
        yield Side(budgets, budgets, marker, memory, None, "")
        return
    clients = [Redis.from_url(stack.urls.redis_url) for _ in range(2)]
    batchers = [
        RedisBatcher(c, scripts=SCRIPTS, timeout_ms=2000, latency=create_metrics().marker_latency)
        for c in clients
    ]
    prefix = f"{unique_name}:"
    # On a cluster the bucket is in another slot than the mark: the marker takes the write in a
    # call of its own first (``cluster=True``: exercised here on one server).
    cluster = request.param == "redis-cluster-calls"
    marker = RedisMarker(batchers[0], prefix=prefix, ttl_s=60, claim_ttl_ms=5000, cluster=cluster)
    memory = RedisCommandMemory(batchers[0], prefix=prefix, ttl_s=60, claim_ttl_ms=5000)
    yield Side(
        RedisWriteBudgets(batchers[0], prefix=prefix),
        RedisWriteBudgets(batchers[1], prefix=prefix),
        marker,
        memory,
        clients[0],
        prefix,
    )
    for batcher, client in zip(batchers, clients, strict=True):
        await batcher.drain()
        await client.aclose()


def draw(principal: str, budget: Budget = SLOW) -> BudgetDraw:
    return BudgetDraw(principal, budget)


async def test_a_bucket_starts_full_and_refuses_past_its_burst_taking_nothing(side: Side) -> None:
    assert [await side.one.take(draw("ann")) for _ in range(SLOW.burst)] == [0, 0, 0]
    waits = [await side.one.take(draw("ann")) for _ in range(3)]
    assert all(0 < wait <= 1000 for wait in waits), waits  # a second per write at 1/s
    assert waits == sorted(waits, reverse=True)  # a refusal took nothing: only time passes


async def test_a_draw_of_several_writes_takes_them_all_or_none(side: Side) -> None:
    """An append across aggregates draws one write per event, at once: with 3 tokens, a draw of
    2 passes, then one of 2 waits (the 1 left is not taken), and one of 1 still passes."""
    budget = Budget(rate_per_s=1, burst=3)
    assert await side.one.take(BudgetDraw("ann", budget, 2)) == 0
    wait = await side.other.take(BudgetDraw("ann", budget, 2))
    assert 0 < wait <= 1000  # one token short, at a token a second
    assert await side.one.take(BudgetDraw("ann", budget, 1)) == 0
    assert await side.one.take(BudgetDraw("ann", budget, 1)) > 0


async def test_principals_do_not_share_a_bucket(side: Side) -> None:
    for _ in range(SLOW.burst):
        await side.one.take(draw("ann"))
    assert await side.one.take(draw("ann")) > 0
    assert [await side.one.take(draw("bob")) for _ in range(SLOW.burst)] == [0, 0, 0]


async def test_two_clients_share_one_bucket_atomically(side: Side) -> None:
    budget = Budget(rate_per_s=1, burst=5)
    started = time.monotonic()
    waits = await asyncio.gather(
        *((side.one, side.other)[n % 2].take(draw("ann", budget)) for n in range(20))
    )
    elapsed_s = time.monotonic() - started
    passed = sum(1 for wait in waits if wait == 0)
    assert budget.burst <= passed <= budget.burst + int(elapsed_s * budget.rate_per_s), waits


async def test_a_refused_principal_is_let_through_again_once_its_bucket_refills(
    side: Side,
) -> None:
    budget = Budget(rate_per_s=20, burst=2)  # a write every 50 ms
    while await side.one.take(draw("ann", budget)) == 0:
        pass

    async def refilled() -> bool:
        return await side.other.take(draw("ann", budget)) == 0

    await wait_for(refilled, timeout_s=5, what="a token refilled at 20 a second")


async def test_an_idle_bucket_is_forgotten_once_it_would_be_full(side: Side) -> None:
    budget = Budget(rate_per_s=1000, burst=2)
    await side.one.take(draw("ann", budget))
    if side.redis is None:
        assert isinstance(side.one, MemoryWriteBudgets)
        assert side.one.buckets_held() == 1

        def forgotten() -> bool:
            assert isinstance(side.one, MemoryWriteBudgets)
            return side.one.buckets_held() == 0

    else:
        key = f"{side.prefix}budget:ann"
        assert 0 < await side.redis.pttl(key) <= 1 + 1000  # full in 1 ms, and a second more

        async def forgotten() -> bool:
            assert side.redis is not None
            return not await side.redis.exists(key)

    await wait_for(forgotten, timeout_s=5, what="the full bucket forgotten")


async def test_the_marker_takes_the_write_first_and_over_budget_claims_and_marks_nothing(
    side: Side,
) -> None:
    once = Budget(rate_per_s=1, burst=1)

    def mark(key: str, command_id: str) -> MarkRequest:
        return MarkRequest(
            key, "OrderPlaced", str(uuid.uuid4()), ["none"], fallback=NEW_AGGREGATE,
            command_id=command_id, token=uuid.uuid4().hex, budget=draw("ann", once),
        )  # fmt: skip

    first = await side.marker.check_and_mark(mark("order:b1", "c1"))
    assert first.status == "marked"
    over = await side.marker.check_and_mark(mark("order:b2", "c2"))
    assert over.status == "over_budget" and 0 < over.retry_after_ms <= 1000
    assert await side.marker.peek("order:b2") is None  # nothing marked
    assert await side.memory.recall("order:b2", "c2") is None  # nothing claimed
    assert await side.other.take(draw("ann", once)) > 0  # one bucket for marks and takes
    unbudgeted = MarkRequest("order:b3", "OrderPlaced", "e3", ["none"], fallback=NEW_AGGREGATE)
    assert (await side.marker.check_and_mark(unbudgeted)).status == "marked"


async def test_a_clock_that_went_back_adds_no_tokens_and_a_full_bucket_holds_no_more() -> None:
    now = [100.0]
    budgets = MemoryWriteBudgets(clock=lambda: now[0])
    budget = Budget(rate_per_s=10, burst=2)
    assert [await budgets.take(draw("ann", budget)) for _ in range(3)] == [0, 0, 100]
    now[0] -= 5  # a clock that went back: no time passed
    assert await budgets.take(draw("ann", budget)) == 100
    now[0] += 5.05  # half a token refilled
    assert await budgets.take(draw("ann", budget)) == 50
    now[0] += 60  # long idle: full, never more than the burst
    assert [await budgets.take(draw("ann", budget)) for _ in range(3)] == [0, 0, 100]


async def test_an_unreachable_backend_raises_marker_unavailable() -> None:
    memory = MemoryWriteBudgets()
    memory.down()
    with pytest.raises(MarkerUnavailable):
        await memory.take(draw("ann"))
    assert await memory.ping() is False
    redis = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    batcher = RedisBatcher(
        redis, scripts=SCRIPTS, timeout_ms=300, latency=create_metrics().marker_latency
    )
    try:
        with pytest.raises(MarkerUnavailable):
            await RedisWriteBudgets(batcher, prefix="x:").take(draw("ann"))
        assert await RedisWriteBudgets(batcher, prefix="x:").ping() is False
    finally:
        await redis.aclose()
