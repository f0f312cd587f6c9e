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
from workers.ports import Head, MarkRequest


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


async def test_a_missing_mark_asks_for_the_store_then_accepts_a_new_aggregate(
    side: Redisside,
) -> None:
    assert (await side.marker.check_and_mark(mark("OrderPlaced", ["none"]))).status == "missing"
    result = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE))
    assert (result.status, result.after, result.current) == ("marked", NEW_AGGREGATE, None)


async def test_the_store_fallback_decides_and_names_the_predecessor(side: Redisside) -> None:
    # The store says the last event was OrderPaid (id p1): a second OrderPlaced is refused.
    refused = await side.marker.check_and_mark(
        mark("OrderPlaced", ["none"], key="order:o9", fallback="OrderPaid|p1")
    )
    assert (refused.status, refused.current) == ("rejected", "OrderPaid")
    shipped = await side.marker.check_and_mark(
        mark("OrderShipped", ["OrderPaid"], key="order:o9", fallback="OrderPaid|p1")
    )
    assert (shipped.status, shipped.after) == ("marked", "p1")


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


async def test_a_retry_of_the_same_event_finds_its_own_mark(side: Redisside) -> None:
    first = mark("OrderPlaced", ["none"], key="order:m1", fallback=NEW_AGGREGATE)
    marked = await side.marker.check_and_mark(first)
    again = await side.marker.check_and_mark(first)  # same event id: a retry
    assert (again.status, again.after) == ("mine", marked.after)


async def test_restore_puts_back_the_previous_mark_only_if_it_is_still_ours(
    side: Redisside,
) -> None:
    await side.marker.check_and_mark(
        mark("OrderPlaced", ["none"], key="order:r1", fallback=NEW_AGGREGATE)
    )
    paid = mark("OrderPaid", ["OrderPlaced"], key="order:r1")
    result = await side.marker.check_and_mark(paid)
    await side.marker.restore(paid, result)  # our produce failed: OrderPaid may come again
    second = await side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:r1"))
    assert second.status == "marked"
    await side.marker.restore(paid, result)  # no longer ours: changes nothing
    third = await side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:r1"))
    assert third.status == "rejected"


async def test_restore_of_a_first_mark_deletes_it(side: Redisside) -> None:
    placed = mark("OrderPlaced", ["none"], key="order:r2", fallback=NEW_AGGREGATE)
    result = await side.marker.check_and_mark(placed)
    await side.marker.restore(placed, result)
    again = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:r2"))
    assert again.status == "missing"


async def test_an_unconfirmed_mark_expires_within_its_bound(
    stack: EmbeddedStack, unique_name: str
) -> None:
    redis = Redis.from_url(stack.urls.redis_url)
    short = wire(redis, f"{unique_name}:", tentative_ms=300)
    try:
        phantom = mark("OrderPaid", ["OrderPlaced"], key="order:t1", fallback="OrderPlaced|p0")
        assert (await short.marker.check_and_mark(phantom)).status == "marked"
        confirmed = mark("OrderPlaced", ["none"], key="order:t2", fallback=NEW_AGGREGATE)
        await short.marker.check_and_mark(confirmed)
        await short.marker.confirm_stored([("order:t2", confirmed.event_id), ("order:t1", "x")])

        async def phantom_gone() -> bool:
            probe = await short.marker.check_and_mark(mark("X", [], key="order:t1"))
            return probe.status == "missing"

        await wait_for(phantom_gone, timeout_s=10, what="the unconfirmed mark to expire")
        kept = await short.marker.check_and_mark(mark("X", [], key="order:t2"))
        assert (kept.status, kept.current) == ("rejected", "OrderPlaced")  # stored: still there
    finally:
        await short.batcher.drain()
        await redis.aclose()


async def test_repair_replaces_a_mark_that_names_a_refused_event(side: Redisside) -> None:
    refused = mark("OrderShipped", ["OrderPlaced"], key="order:p1", fallback="OrderPlaced|h1")
    await side.marker.check_and_mark(refused)
    await side.marker.repair("order:p1", "someone-else", Head(1, "h9", "OrderPaid"))  # not it
    await side.marker.repair("order:p1", refused.event_id, Head(1, "h1", "OrderPlaced"))
    await side.batcher.drain()
    after = await side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:p1"))
    assert (after.status, after.after) == ("marked", "h1")


async def test_a_claim_returns_what_is_there_and_an_unknown_one_is_taken_over(
    side: Redisside,
) -> None:
    assert await side.memory.claim("order:c1", "cmd-7", "e1") is None
    pending = await side.memory.claim("order:c1", "cmd-7", "e1")
    assert pending is not None and (pending.state, pending.event_id) == ("pending", "e1")
    await side.memory.unknown("order:c1", "cmd-7", "e1")
    taken = await side.memory.claim("order:c1", "cmd-7", "e1")  # a retry after an unknown outcome
    assert taken is not None and taken.state == "unknown"
    held = await side.memory.claim("order:c1", "cmd-7", "e1")
    assert held is not None and held.state == "pending"  # the retry holds it now
    await side.memory.settle("order:c1", "cmd-7", b'{"status": 202, "body": {}}')
    await side.batcher.drain()
    answered = await side.memory.claim("order:c1", "cmd-7", "e1")
    assert answered is not None and (answered.state, answered.answer) == (
        "answered",
        b'{"status": 202, "body": {}}',
    )


async def test_release_forgets_only_our_own_claim(side: Redisside) -> None:
    assert await side.memory.claim("order:c2", "cmd-1", "e1") is None
    await side.memory.release("order:c2", "cmd-1", "e-other")  # not ours: stays
    assert (await side.memory.recall("order:c2", "cmd-1")) is not None
    await side.memory.release("order:c2", "cmd-1", "e1")
    assert await side.memory.recall("order:c2", "cmd-1") is None


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


async def test_the_new_aggregate_filter_answers_only_when_ready_and_never_for_a_noted_one(
    side: Redisside,
) -> None:
    fresh = mark("OrderPlaced", ["none"], key="order:f1")
    assert (await side.marker.check_and_mark(fresh)).status == "missing"  # not ready: ask the store
    await side.marker.note_aggregates(["order:f2"])
    await side.marker.mark_filter_ready()
    assert await side.marker.filter_ready()
    new = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f3"))
    assert (new.status, new.after) == ("marked", NEW_AGGREGATE)  # certainly new: no store read
    noted = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f2"))
    assert noted.status == "missing"  # it exists: the store decides
    await side.redis.delete(f"{side.marker._keys.seen()}")  # a flush or an eviction
    assert not await side.marker.filter_ready()
    lost = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f4"))
    assert lost.status == "missing"  # a lost filter never answers "new"


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


async def test_any_accepts_every_marked_type_and_still_marks(side: Redisside) -> None:
    # after=ANY travels as "*": a new aggregate, a marked one, and the store's fallback all pass.
    written = mark("NoteWritten", ["*"], key="note:a1", fallback=NEW_AGGREGATE)
    first = await side.marker.check_and_mark(written)
    assert (first.status, first.current) == ("marked", None)
    second = await side.marker.check_and_mark(mark("Pinned", ["*"], key="note:a1"))
    assert (second.status, second.current, second.after) == ("marked", "NoteWritten", written.event_id)
    fallback = await side.marker.check_and_mark(
        mark("Pinned", ["*"], key="note:a2", fallback="Archived|x1")
    )
    assert (fallback.status, fallback.current) == ("marked", "Archived")
    # A checked type after it is judged against the mark ANY left behind.
    refused = await side.marker.check_and_mark(mark("Archived", ["NoteWritten"], key="note:a1"))
    assert (refused.status, refused.current) == ("rejected", "Pinned")
