"""The Redis marker and command memory against a real Redis: atomicity, bounds, Redis down or paused."""

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


def wire(
    redis: Redis, prefix: str, *, timeout_ms: int = 2000, tentative_ms: int = 60_000
) -> Redisside:
    batcher = RedisBatcher(
        redis, scripts=SCRIPTS, timeout_ms=timeout_ms, latency=create_metrics().marker_latency
    )
    marker = RedisMarker(batcher, prefix=prefix, ttl_s=60, tentative_ttl_ms=tentative_ms)
    memory = RedisCommandMemory(batcher, prefix=prefix, ttl_s=60, claim_ttl_ms=tentative_ms)
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


async def test_redis_down_is_a_clear_retriable_error(private_stack: EmbeddedStack) -> None:
    redis = Redis.from_url(
        private_stack.urls.redis_url, socket_connect_timeout=0.3, socket_timeout=0.3
    )
    down = wire(redis, "down:", timeout_ms=300)
    await private_stack.process("redis").stop()
    try:
        results = await asyncio.gather(
            *(down.marker.check_and_mark(mark("OrderPlaced", ["none"])) for _ in range(3)),
            down.memory.claim("order:x", "c", "e"),
            return_exceptions=True,
        )
        assert all(isinstance(r, MarkerUnavailable) and r.retriable for r in results), results
        assert "did not answer" in str(results[0]) and "Error" not in str(results[0])
        assert not await down.marker.ping()
    finally:
        await redis.aclose()


async def test_a_call_that_timed_out_on_a_paused_redis_leaves_at_most_a_bounded_mark(
    private_stack: EmbeddedStack,
) -> None:
    """The timeout fires after the script was sent: Redis runs it when it resumes."""
    redis = Redis.from_url(private_stack.urls.redis_url)
    paused = wire(redis, "paused:", timeout_ms=300, tentative_ms=1500)
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
        ttl_ms = await reader.pttl(key)
        assert 0 < ttl_ms <= 1500  # tentative: it cannot outlive the bound
    finally:
        await reader.aclose()
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


async def test_in_a_cluster_the_filter_is_asked_in_its_own_call(
    stack: EmbeddedStack, unique_name: str
) -> None:
    redis = Redis.from_url(stack.urls.redis_url)
    batcher = RedisBatcher(redis, scripts=SCRIPTS, timeout_ms=2000, latency=create_metrics().marker_latency)
    marker = RedisMarker(batcher, prefix=f"{unique_name}:", cluster=True)
    try:
        await marker.note_aggregates(["order:c1"])
        await marker.mark_filter_ready()
        new = await marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:c9"))
        assert new.status == "marked"
        known = await marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:c1"))
        assert known.status == "missing"
    finally:
        await batcher.drain()
        await redis.aclose()


