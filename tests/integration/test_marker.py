"""The Redis marker against a real Redis: atomicity under concurrency, Redis down, paused or restarted.

The behaviour it shares with its in-memory twin is the contract in ``tests/contracts/test_marker.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tests.waiting import wait_for
from topics.envelope import NEW_AGGREGATE
from topics.errors import MarkerUnavailable
from workers.adapters.redis import SCRIPTS, RedisBatcher, RedisCommandMemory, RedisMarker
from workers.devtools.embedded import EmbeddedStack
from workers.metrics import create_metrics
from workers.ports import MarkRequest


@dataclass
class Redisside:
    """A marker and a command memory sharing one coalescing connection, as in the fleet."""

    redis: Redis
    batcher: RedisBatcher
    marker: RedisMarker
    memory: RedisCommandMemory


def wire(redis: Redis, prefix: str, *, timeout_ms: int = 2000, ttl_s: int = 60) -> Redisside:
    batcher = RedisBatcher(
        redis, scripts=SCRIPTS, timeout_ms=timeout_ms, latency=create_metrics().marker_latency
    )
    marker = RedisMarker(batcher, prefix=prefix, ttl_s=ttl_s, claim_ttl_ms=5000)
    memory = RedisCommandMemory(batcher, prefix=prefix, ttl_s=ttl_s, claim_ttl_ms=5000)
    return Redisside(redis, batcher, marker, memory)


@pytest.fixture
async def side(stack: EmbeddedStack, unique_name: str) -> AsyncIterator[Redisside]:
    redis = Redis.from_url(stack.urls.redis_url)
    wired = wire(redis, f"{unique_name}:")
    yield wired
    await wired.batcher.drain()
    await redis.aclose()


def mark(event_type: str, allowed: list[str], *, key: str = "order:o1", **kw: str) -> MarkRequest:
    return MarkRequest(key, event_type, str(uuid.uuid4()), allowed, **kw)


async def test_of_many_concurrent_conflicting_requests_exactly_one_is_marked(
    side: Redisside,
) -> None:
    placed = mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE)
    await side.marker.check_and_mark(placed)
    results = await asyncio.gather(
        *(side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"])) for _ in range(40))
    )
    assert sorted(r.status for r in results) == ["marked"] + ["rejected"] * 39
    winner = next(r for r in results if r.status == "marked")
    assert winner.after == placed.event_id  # validated after exactly the placed event
    assert {r.current for r in results if r.status == "rejected"} == {"OrderPaid"}


async def test_redis_down_is_a_clear_retriable_error(private_stack: EmbeddedStack) -> None:
    redis = Redis.from_url(
        private_stack.urls.redis_url, socket_connect_timeout=0.3, socket_timeout=0.3
    )
    down = wire(redis, "down:", timeout_ms=300)
    await private_stack.process("redis").stop()
    try:
        results = await asyncio.gather(
            *(down.marker.check_and_mark(mark("OrderPlaced", ["none"])) for _ in range(3)),
            down.memory.claim("order:x", "c", "e", "t"),
            return_exceptions=True,
        )
        assert all(isinstance(r, MarkerUnavailable) and r.retriable for r in results), results
        assert "did not answer" in str(results[0]) and "Error" not in str(results[0])
        assert not await down.marker.ping()
    finally:
        await redis.aclose()


async def test_scripts_flushed_from_redis_are_loaded_again(private_stack: EmbeddedStack) -> None:
    redis = Redis.from_url(private_stack.urls.redis_url)  # our own Redis: flushing it harms no one
    own = wire(redis, "flush:")
    try:
        await redis.script_flush()
        result = await own.marker.check_and_mark(
            mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE)
        )
        assert result.status == "marked"
    finally:
        await redis.aclose()


async def test_a_call_that_timed_out_on_a_paused_redis_may_still_leave_its_mark(
    private_stack: EmbeddedStack,
) -> None:
    """The timeout fires after the script was sent: Redis runs it when it resumes. The mark
    lives for the marker TTL (no timer rolls it back); the command side replaces it once the
    store shows its event never came (tests/roles/test_commands.py, the phantom mark)."""
    redis = Redis.from_url(private_stack.urls.redis_url)
    paused = wire(redis, "paused:", timeout_ms=300, ttl_s=60)
    phantom = mark("OrderPaid", ["OrderPlaced"], key="order:ph", fallback="OrderPlaced|p0")
    warm = mark("OrderPlaced", ["none"], key="order:warm", fallback=NEW_AGGREGATE)
    await paused.marker.check_and_mark(warm)  # connected, scripts loaded: as a running fleet
    process = private_stack.process("redis")
    process.pause()
    try:
        with pytest.raises(MarkerUnavailable):
            await paused.marker.check_and_mark(phantom)
    finally:
        process.resume()
    reader = Redis.from_url(private_stack.urls.redis_url)
    try:
        key = "paused:mark:{order:ph}"

        async def applied_late() -> bool:
            return await reader.get(key) is not None

        await wait_for(applied_late, timeout_s=10, what="the late script to run on resume")
        assert 50_000 < await reader.pttl(key) <= 60_000
    finally:
        await reader.aclose()
        await redis.aclose()


async def test_a_filter_built_before_redis_restarted_is_not_trusted(
    private_stack: EmbeddedStack,
) -> None:
    """A restart (from a dump, or a failover) is another run: notes after the dump may be lost."""
    redis = Redis.from_url(private_stack.urls.redis_url)
    side = wire(redis, "restart:")
    try:
        await side.marker.mark_filter_ready()
        assert await side.marker.filter_ready()
        seen = await redis.dump("restart:seen")
        run = await redis.dump("restart:seen:run")
        process = private_stack.process("redis")
        await process.stop()
        await process.start()
    finally:
        await redis.aclose()
    redis = Redis.from_url(private_stack.urls.redis_url)
    try:
        await redis.restore("restart:seen", 0, seen)  # what a dump would bring back
        await redis.restore("restart:seen:run", 0, run)
        assert await redis.getbit("restart:seen", 0) == 1
        side = wire(redis, "restart:")
        assert not await side.marker.filter_ready()  # built on another run of the server
        await side.marker.mark_filter_ready()  # rebuilt on this run
        assert await side.marker.filter_ready()
    finally:
        await redis.aclose()
