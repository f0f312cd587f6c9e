"""The ticket store: one contract, run on the in-memory twin and on real Redis.

A record is found while kept and gone after; a ticket is spent once (the first ``spend``
answers True, every later one False, also from another client of the same Redis, at once), and
never without its record; what the store holds is bounded (issue 46): a principal at most its
share of records, the fleet at most its total, a put over either refused with
``TooManyTickets`` (which limit, and when the oldest record counted leaves) and nothing kept;
an unreachable Redis raises MarkerUnavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tests.waiting import wait_for
from topics.errors import MarkerUnavailable, TooManyTickets
from workers.adapters.memory import MemoryTicketStore
from workers.adapters.redis import RedisTicketStore
from workers.devtools.embedded import EmbeddedStack
from workers.ports import TicketLimits, TicketStore

LIMITS = TicketLimits(per_principal=3, max_held=5)


@dataclass
class Stores:
    """Two clients of one backend (two processes of a fleet), and the backend's kind."""

    one: TicketStore
    other: TicketStore
    kind: str


@pytest.fixture(params=["memory", "redis"])
async def stores(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Stores]:
    if request.param == "memory":
        store = MemoryTicketStore(limits=LIMITS)
        yield Stores(store, store, "memory")
        return
    first, second = Redis.from_url(stack.urls.redis_url), Redis.from_url(stack.urls.redis_url)
    prefix = f"{unique_name}:"
    yield Stores(
        RedisTicketStore(first, prefix=prefix, limits=LIMITS),
        RedisTicketStore(second, prefix=prefix, limits=LIMITS),
        "redis",
    )
    await first.aclose()
    await second.aclose()


async def test_a_record_is_found_by_its_digest_from_any_client(stores: Stores) -> None:
    assert await stores.other.find("d1") is None
    await stores.one.put("d1", b'{"route": "/v1/rooms/r/ws"}', keep_s=60, principal="ann")
    assert await stores.other.find("d1") == b'{"route": "/v1/rooms/r/ws"}'
    assert await stores.other.find("d2") is None


async def test_a_ticket_is_spent_once_across_clients_even_at_the_same_moment(
    stores: Stores,
) -> None:
    await stores.one.put("d3", b"r", keep_s=60, principal="ann")
    spends = (s.spend("d3", keep_s=60) for s in (stores.one, stores.other) * 10)
    results = await asyncio.gather(*spends)
    assert sorted(results) == [False] * 19 + [True]
    assert await stores.one.spend("d3", keep_s=60) is False


async def test_a_digest_without_its_record_is_never_spent(stores: Stores) -> None:
    assert await stores.one.spend("never-put", keep_s=60) is False
    await stores.one.put("never-put", b"r", keep_s=60)  # put later: its first spend is true
    assert await stores.other.spend("never-put", keep_s=60) is True


async def test_a_principal_holds_at_most_its_share_and_another_is_not_held_back(
    stores: Stores,
) -> None:
    for n in range(LIMITS.per_principal):
        await stores.one.put(f"a{n}", b"r", keep_s=60, principal="ann")
    with pytest.raises(TooManyTickets, match="EVENTFLEET_TICKETS_PER_PRINCIPAL") as refused:
        await stores.other.put("a-over", b"r", keep_s=60, principal="ann")
    assert refused.value.limit == "principal"
    assert 1 <= refused.value.retry_after_s <= 60  # until her oldest record leaves
    assert await stores.one.find("a-over") is None  # nothing kept
    assert await stores.one.spend("a-over", keep_s=60) is False
    await stores.other.put("b0", b"r", keep_s=60, principal="bob")  # his share is his own
    assert await stores.one.find("b0") == b"r"


async def test_the_fleet_holds_at_most_its_total_whoever_asks(stores: Stores) -> None:
    for n in range(LIMITS.max_held):
        await stores.one.put(f"f{n}", b"r", keep_s=60, principal=f"p{n}")
    for principal in ("someone-new", None):
        with pytest.raises(TooManyTickets, match="EVENTFLEET_TICKETS_MAX_HELD") as refused:
            await stores.other.put("f-over", b"r", keep_s=60, principal=principal)
        assert (refused.value.limit, refused.value.retry_after_s > 0) == ("fleet", True)
    assert await stores.one.find("f-over") is None


async def test_racing_puts_of_one_principal_from_two_clients_keep_exactly_its_share(
    stores: Stores,
) -> None:
    async def put(store: TicketStore, n: int) -> bool:
        try:
            await store.put(f"r{n}", b"r", keep_s=60, principal="ann")
        except TooManyTickets:
            return False
        return True

    kept = await asyncio.gather(*(put((stores.one, stores.other)[n % 2], n) for n in range(12)))
    assert sum(kept) == LIMITS.per_principal
    found = [await stores.one.find(f"r{n}") for n in range(12)]
    assert [f is not None for f in found] == list(kept)


async def test_a_share_frees_as_its_records_leave(stores: Stores) -> None:
    for n in range(LIMITS.per_principal):
        await stores.one.put(f"s{n}", b"r", keep_s=1, principal="ann")
    with pytest.raises(TooManyTickets):
        await stores.one.put("s-next", b"r", keep_s=1, principal="ann")
    if isinstance(stores.one, MemoryTicketStore):
        now = stores.one.clock()
        stores.one.clock = lambda: now + 1.0
        assert stores.one.tickets_held("ann") == 0

    async def taken() -> bool:
        try:
            await stores.other.put("s-next", b"r", keep_s=60, principal="ann")
        except TooManyTickets:
            return False
        return True

    await wait_for(taken, timeout_s=10, what="a record leaving and freeing its place")
    assert await stores.one.find("s-next") == b"r"


async def test_records_and_marks_expire() -> None:
    now = [1000.0]
    store = MemoryTicketStore(clock=lambda: now[0])
    await store.put("d", b"r", keep_s=10)
    assert await store.spend("d", keep_s=10) is True
    now[0] += 10
    assert await store.find("d") is None
    assert await store.spend("d", keep_s=10) is False  # the record is gone, and with it the ticket
    assert store.tickets_held() == 0


async def test_redis_keys_expire_hold_no_ticket_and_stay_bounded(
    stack: EmbeddedStack, unique_name: str
) -> None:
    redis = Redis.from_url(stack.urls.redis_url)
    try:
        store = RedisTicketStore(redis, prefix=f"{unique_name}:", limits=LIMITS)
        await store.put("abc", b"r", keep_s=60, principal="ann")
        await store.spend("abc", keep_s=60)
        keys = sorted(str(k, "utf-8") for k in await redis.keys(f"{unique_name}:*"))
        tag = f"{unique_name}:{{tickets}}:"
        principal_set = next(k for k in keys if k.startswith(tag + "held:"))
        assert "ann" not in principal_set  # a digest of the principal, as of the ticket
        assert keys == sorted([tag + "abc", tag + "spent:abc", tag + "held", principal_set])
        ttls = [await redis.ttl(k) for k in keys]
        assert all(0 < ttl <= 60 for ttl in ttls), ttls
        for n in range(50):  # a flood of puts: the fleet's total holds
            try:
                await store.put(f"x{n}", b"r" * 200, keep_s=60, principal=f"p{n}")
            except TooManyTickets:
                pass
        records = [
            k for k in await redis.keys(f"{tag}*") if b":held" not in k and b":spent:" not in k
        ]
        assert len(records) == LIMITS.max_held
        assert await redis.zcard(tag + "held") == LIMITS.max_held
    finally:
        await redis.aclose()


async def test_an_unreachable_store_raises_marker_unavailable() -> None:
    memory = MemoryTicketStore()
    memory.down()
    with pytest.raises(MarkerUnavailable):
        await memory.find("d")
    redis = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    try:
        store = RedisTicketStore(redis, prefix="x:")
        with pytest.raises(MarkerUnavailable, match="retry"):
            await store.spend("d", keep_s=1)
        with pytest.raises(MarkerUnavailable, match="retry"):
            await store.put("d", b"r", keep_s=1, principal="ann")
    finally:
        await redis.aclose()
