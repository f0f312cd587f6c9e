"""The ticket store: one contract, run on the in-memory twin and on real Redis.

A record is found while kept and gone after; a ticket is spent once (the first ``spend``
answers True, every later one False, also from another client of the same Redis, at once);
an unreachable Redis raises MarkerUnavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from topics.errors import MarkerUnavailable
from workers.adapters.memory import MemoryTicketStore
from workers.adapters.redis import RedisTicketStore
from workers.devtools.embedded import EmbeddedStack
from workers.ports import TicketStore


@pytest.fixture(params=["memory", "redis"])
async def stores(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[tuple[TicketStore, TicketStore]]:
    """Two clients of one backend (two processes of a fleet)."""
    if request.param == "memory":
        store = MemoryTicketStore()
        yield store, store
        return
    first, second = Redis.from_url(stack.urls.redis_url), Redis.from_url(stack.urls.redis_url)
    prefix = f"{unique_name}:"
    yield RedisTicketStore(first, prefix=prefix), RedisTicketStore(second, prefix=prefix)
    await first.aclose()
    await second.aclose()


async def test_a_record_is_found_by_its_digest_from_any_client(
    stores: tuple[TicketStore, TicketStore],
) -> None:
    one, other = stores
    assert await other.find("d1") is None
    await one.put("d1", b'{"route": "/v1/rooms/r/ws"}', keep_s=60)
    assert await other.find("d1") == b'{"route": "/v1/rooms/r/ws"}'
    assert await other.find("d2") is None


async def test_a_ticket_is_spent_once_across_clients_even_at_the_same_moment(
    stores: tuple[TicketStore, TicketStore],
) -> None:
    one, other = stores
    results = await asyncio.gather(*(s.spend("d3", keep_s=60) for s in (one, other) * 10))
    assert sorted(results) == [False] * 19 + [True]
    assert await one.spend("d3", keep_s=60) is False


async def test_records_and_marks_expire() -> None:
    now = [1000.0]
    store = MemoryTicketStore(clock=lambda: now[0])
    await store.put("d", b"r", keep_s=10)
    assert await store.spend("d", keep_s=10) is True
    now[0] += 10
    assert await store.find("d") is None
    assert await store.spend("d", keep_s=10) is True  # the mark is gone with the record


async def test_redis_keys_expire_and_hold_no_ticket(stack: EmbeddedStack, unique_name: str) -> None:
    redis = Redis.from_url(stack.urls.redis_url)
    try:
        store = RedisTicketStore(redis, prefix=f"{unique_name}:")
        await store.put("abc", b"r", keep_s=60)
        await store.spend("abc", keep_s=60)
        keys = sorted(str(k, "utf-8") if isinstance(k, bytes) else k
                      for k in await redis.keys(f"{unique_name}:*"))  # fmt: skip
        assert keys == [f"{unique_name}:ticket-spent:abc", f"{unique_name}:ticket:abc"]
        ttls = [await redis.ttl(k) for k in keys]
        assert all(0 < ttl <= 60 for ttl in ttls), ttls
    finally:
        await redis.aclose()


async def test_an_unreachable_store_raises_marker_unavailable() -> None:
    memory = MemoryTicketStore()
    memory.down()
    with pytest.raises(MarkerUnavailable):
        await memory.find("d")
    redis = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    try:
        with pytest.raises(MarkerUnavailable, match="retry"):
            await RedisTicketStore(redis, prefix="x:").spend("d", keep_s=1)
    finally:
        await redis.aclose()
