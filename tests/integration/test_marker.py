"""The Redis marker against a real Redis: atomic check-and-mark, restore, command answers, Redis down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from topics.errors import MarkerUnavailable
from workers.adapters.redis import NO_EVENTS, RedisMarker
from workers.devtools.embedded import EmbeddedStack
from workers.metrics import create_metrics
from workers.ports import MarkRequest


@pytest.fixture
async def marker(stack: EmbeddedStack, unique_name: str) -> AsyncIterator[RedisMarker]:
    redis = Redis.from_url(stack.urls.redis_url)
    yield RedisMarker(redis, create_metrics(), prefix=f"{unique_name}:", ttl_s=60)
    await redis.aclose()


def mark(event_type: str, allowed: list[str], *, key: str = "order:o1", **kw: str) -> MarkRequest:
    return MarkRequest(key, event_type, str(uuid.uuid4()), allowed, **kw)  # type: ignore[arg-type]


async def test_a_missing_mark_asks_for_the_store_then_accepts_a_new_aggregate(
    marker: RedisMarker,
) -> None:
    placed = mark("OrderPlaced", ["none"])
    assert (await marker.check_and_mark(placed)).status == "missing"
    result = await marker.check_and_mark(mark("OrderPlaced", ["none"], fallback=NO_EVENTS))
    assert (result.status, result.value) == ("marked", "")


async def test_the_store_fallback_decides_when_the_mark_expired(marker: RedisMarker) -> None:
    # The store says the last event was OrderPaid: a second OrderPlaced is refused.
    refused = await marker.check_and_mark(
        mark("OrderPlaced", ["none"], key="order:o9", fallback="OrderPaid")
    )
    assert (refused.status, refused.value) == ("rejected", "OrderPaid")
    shipped = await marker.check_and_mark(
        mark("OrderShipped", ["OrderPaid"], key="order:o9", fallback="OrderPaid")
    )
    assert shipped.status == "marked"


async def test_of_many_concurrent_conflicting_requests_exactly_one_is_marked(
    marker: RedisMarker,
) -> None:
    await marker.check_and_mark(mark("OrderPlaced", ["none"], fallback=NO_EVENTS))
    results = await asyncio.gather(
        *(marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"])) for _ in range(40))
    )
    assert sorted(r.status for r in results) == ["marked"] + ["rejected"] * 39
    assert {r.value for r in results if r.status == "rejected"} == {"OrderPaid"}


async def test_restore_puts_back_the_previous_mark_only_if_it_is_still_ours(
    marker: RedisMarker,
) -> None:
    await marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:r1", fallback=NO_EVENTS))
    paid = mark("OrderPaid", ["OrderPlaced"], key="order:r1")
    previous = (await marker.check_and_mark(paid)).value
    await marker.restore(paid, previous)  # our produce failed: OrderPaid may be requested again
    assert (
        await marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:r1"))
    ).status == "marked"
    # A restore of a mark that is no longer ours changes nothing.
    await marker.restore(paid, previous)
    assert (
        await marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:r1"))
    ).status == "rejected"


async def test_restore_of_a_first_mark_deletes_it(marker: RedisMarker) -> None:
    placed = mark("OrderPlaced", ["none"], key="order:r2", fallback=NO_EVENTS)
    previous = (await marker.check_and_mark(placed)).value
    await marker.restore(placed, previous)
    assert (
        await marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:r2"))
    ).status == "missing"


async def test_a_repeated_command_id_sees_the_first_answer(marker: RedisMarker) -> None:
    first = mark("OrderPlaced", ["none"], key="order:c1", fallback=NO_EVENTS, command_id="cmd-7")
    assert (await marker.check_and_mark(first)).status == "marked"
    pending = await marker.check_and_mark(
        mark("OrderPlaced", ["none"], key="order:c1", command_id="cmd-7")
    )
    assert (pending.status, pending.value) == ("duplicate", f"pending|{first.event_id}")
    await marker.remember_answer("order:c1", "cmd-7", b'{"status": 202}')
    again = await marker.check_and_mark(
        mark("OrderPlaced", ["none"], key="order:c1", command_id="cmd-7")
    )
    assert (again.status, again.value) == ("duplicate", '{"status": 202}')


async def test_redis_down_is_a_clear_retriable_error(private_stack: EmbeddedStack) -> None:
    redis = Redis.from_url(
        private_stack.urls.redis_url, socket_connect_timeout=0.3, socket_timeout=0.3
    )
    marker = RedisMarker(redis, create_metrics(), timeout_ms=300)
    await private_stack.process("redis").stop()
    try:
        results = await asyncio.gather(
            *(marker.check_and_mark(mark("OrderPlaced", ["none"])) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, MarkerUnavailable) and r.retriable for r in results), results
        assert not await marker.ping()
    finally:
        await redis.aclose()


async def test_scripts_flushed_from_redis_are_loaded_again(private_stack: EmbeddedStack) -> None:
    redis = Redis.from_url(private_stack.urls.redis_url)  # our own Redis: flushing it harms no one
    marker = RedisMarker(redis, create_metrics())
    try:
        await redis.script_flush()
        result = await marker.check_and_mark(mark("OrderPlaced", ["none"], fallback=NO_EVENTS))
        assert result.status == "marked"
    finally:
        await redis.aclose()
