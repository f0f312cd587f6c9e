"""The Marker and CommandMemory contracts, on the in-memory ones and on Redis (the fleet's scripts).

A mark is checked and set atomically, tentative until its event is stored, restored only while
it is ours; a command claim returns what is there, an unknown outcome is taken over, an answer
is kept. ``settle()`` lets the calls that may return before Redis applied them land.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tests.waiting import wait_for
from topics.envelope import NEW_AGGREGATE
from workers.adapters.memory import MemoryCommandMemory, MemoryMarker
from workers.adapters.redis import SCRIPTS, RedisBatcher, RedisCommandMemory, RedisMarker
from workers.devtools.embedded import EmbeddedStack
from workers.metrics import create_metrics
from workers.ports import CommandMemory, Head, Marker, MarkRequest


@dataclass
class Marking:
    """One marker and command memory under test, as the fleet pairs them."""

    kind: str
    marker: Marker
    memory: CommandMemory
    settle: Callable[[], Awaitable[None]]
    lose_filter: Callable[[], Awaitable[None]]
    """What a Redis flush or an eviction does to the new-aggregate filter."""


@asynccontextmanager
async def built(
    kind: str, stack: EmbeddedStack, prefix: str, *, tentative_s: float
) -> AsyncIterator[Marking]:
    if kind == "memory":
        marker = MemoryMarker(ttl_s=60, tentative_s=tentative_s)

        async def nothing() -> None:
            return None

        async def lose() -> None:
            marker.lose_filter()

        yield Marking(
            kind, marker, MemoryCommandMemory(ttl_s=60, claim_s=tentative_s), nothing, lose
        )
        return
    redis = Redis.from_url(stack.urls.redis_url)
    batcher = RedisBatcher(
        redis, scripts=SCRIPTS, timeout_ms=2000, latency=create_metrics().marker_latency
    )
    ms = int(tentative_s * 1000)
    real = RedisMarker(batcher, prefix=prefix, ttl_s=60, tentative_ttl_ms=ms)
    memory = RedisCommandMemory(batcher, prefix=prefix, ttl_s=60, claim_ttl_ms=ms)

    async def forget_filter() -> None:
        await redis.delete(real._keys.seen())

    try:
        yield Marking(kind, real, memory, batcher.drain, forget_filter)
    finally:
        await batcher.drain()
        await redis.aclose()


@pytest.fixture(params=("memory", "redis"))
async def marks(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Marking]:
    async with built(request.param, stack, f"{unique_name}:", tentative_s=60) as made:
        yield made


@pytest.fixture(params=("memory", "redis"))
async def short_marks(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Marking]:
    """Marks whose tentative bound is 0.3 s."""
    async with built(request.param, stack, f"{unique_name}:", tentative_s=0.3) as made:
        yield made


def mark(event_type: str, allowed: list[str], *, key: str = "order:o1", **kw: str) -> MarkRequest:
    return MarkRequest(key, event_type, str(uuid.uuid4()), allowed, **kw)


async def test_peek_shows_the_mark_the_auditor_reads(marks: Marking) -> None:
    placed = mark("OrderPlaced", ["none"], key="order:k1", fallback=NEW_AGGREGATE)
    await marks.marker.check_and_mark(placed)
    peek = marks.marker.peek
    assert await peek("order:k1") == ("OrderPlaced", placed.event_id)
    assert await peek("order:nobody") is None
    assert await marks.marker.ping()


async def test_a_missing_mark_asks_for_the_store_then_accepts_a_new_aggregate(
    marks: Marking,
) -> None:
    assert (await marks.marker.check_and_mark(mark("OrderPlaced", ["none"]))).status == "missing"
    result = await marks.marker.check_and_mark(
        mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE)
    )
    assert (result.status, result.after, result.current) == ("marked", NEW_AGGREGATE, None)


async def test_the_store_fallback_decides_and_names_the_predecessor(marks: Marking) -> None:
    # The store says the last event was OrderPaid (id p1): a second OrderPlaced is refused.
    refused = await marks.marker.check_and_mark(
        mark("OrderPlaced", ["none"], key="order:o9", fallback="OrderPaid|p1")
    )
    assert (refused.status, refused.current) == ("rejected", "OrderPaid")
    shipped = await marks.marker.check_and_mark(
        mark("OrderShipped", ["OrderPaid"], key="order:o9", fallback="OrderPaid|p1")
    )
    assert (shipped.status, shipped.after) == ("marked", "p1")


async def test_of_many_concurrent_conflicting_requests_exactly_one_is_marked(
    marks: Marking,
) -> None:
    placed = mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE)
    await marks.marker.check_and_mark(placed)
    results = await asyncio.gather(
        *(marks.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"])) for _ in range(40))
    )
    assert sorted(r.status for r in results) == ["marked"] + ["rejected"] * 39
    winner = next(r for r in results if r.status == "marked")
    assert winner.after == placed.event_id  # validated after exactly the placed event
    assert {r.current for r in results if r.status == "rejected"} == {"OrderPaid"}


async def test_a_retry_of_the_same_event_finds_its_own_mark(marks: Marking) -> None:
    first = mark("OrderPlaced", ["none"], key="order:m1", fallback=NEW_AGGREGATE)
    marked = await marks.marker.check_and_mark(first)
    again = await marks.marker.check_and_mark(first)  # same event id: a retry
    assert (again.status, again.after) == ("mine", marked.after)


async def test_restore_puts_back_the_previous_mark_only_if_it_is_still_ours(
    marks: Marking,
) -> None:
    await marks.marker.check_and_mark(
        mark("OrderPlaced", ["none"], key="order:r1", fallback=NEW_AGGREGATE)
    )
    paid = mark("OrderPaid", ["OrderPlaced"], key="order:r1")
    result = await marks.marker.check_and_mark(paid)
    await marks.marker.restore(paid, result)  # our produce failed: OrderPaid may come again
    second = await marks.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:r1"))
    assert second.status == "marked"
    await marks.marker.restore(paid, result)  # no longer ours: changes nothing
    third = await marks.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:r1"))
    assert third.status == "rejected"


async def test_restore_of_a_first_mark_deletes_it(marks: Marking) -> None:
    placed = mark("OrderPlaced", ["none"], key="order:r2", fallback=NEW_AGGREGATE)
    result = await marks.marker.check_and_mark(placed)
    await marks.marker.restore(placed, result)
    again = await marks.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:r2"))
    assert again.status == "missing"


async def test_an_unconfirmed_mark_expires_within_its_bound(short_marks: Marking) -> None:
    marker = short_marks.marker
    phantom = mark("OrderPaid", ["OrderPlaced"], key="order:t1", fallback="OrderPlaced|p0")
    assert (await marker.check_and_mark(phantom)).status == "marked"
    confirmed = mark("OrderPlaced", ["none"], key="order:t2", fallback=NEW_AGGREGATE)
    await marker.check_and_mark(confirmed)
    await marker.confirm_stored([("order:t2", confirmed.event_id), ("order:t1", "x")])
    await short_marks.settle()

    async def phantom_gone() -> bool:
        probe = await marker.check_and_mark(mark("X", [], key="order:t1"))
        return probe.status == "missing"

    await wait_for(phantom_gone, timeout_s=10, what="the unconfirmed mark to expire")
    kept = await marker.check_and_mark(mark("X", [], key="order:t2"))
    assert (kept.status, kept.current) == ("rejected", "OrderPlaced")  # stored: still there


async def test_repair_replaces_a_mark_that_names_a_refused_event(marks: Marking) -> None:
    refused = mark("OrderShipped", ["OrderPlaced"], key="order:p1", fallback="OrderPlaced|h1")
    await marks.marker.check_and_mark(refused)
    await marks.marker.repair("order:p1", "someone-else", Head(1, "h9", "OrderPaid"))  # not it
    await marks.marker.repair("order:p1", refused.event_id, Head(1, "h1", "OrderPlaced"))
    await marks.settle()
    after = await marks.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:p1"))
    assert (after.status, after.after) == ("marked", "h1")


async def test_a_claim_returns_what_is_there_and_an_unknown_one_is_taken_over(
    marks: Marking,
) -> None:
    assert await marks.memory.claim("order:c1", "cmd-7", "e1") is None
    pending = await marks.memory.claim("order:c1", "cmd-7", "e1")
    assert pending is not None and (pending.state, pending.event_id) == ("pending", "e1")
    await marks.memory.unknown("order:c1", "cmd-7", "e1")
    taken = await marks.memory.claim("order:c1", "cmd-7", "e1")  # a retry after an unknown outcome
    assert taken is not None and taken.state == "unknown"
    held = await marks.memory.claim("order:c1", "cmd-7", "e1")
    assert held is not None and held.state == "pending"  # the retry holds it now
    await marks.memory.settle("order:c1", "cmd-7", b'{"status": 202, "body": {}}')
    await marks.settle()
    answered = await marks.memory.claim("order:c1", "cmd-7", "e1")
    assert answered is not None and (answered.state, answered.answer) == (
        "answered",
        b'{"status": 202, "body": {}}',
    )


async def test_release_forgets_only_our_own_claim(marks: Marking) -> None:
    assert await marks.memory.claim("order:c2", "cmd-1", "e1") is None
    await marks.memory.release("order:c2", "cmd-1", "e-other")  # not ours: stays
    assert (await marks.memory.recall("order:c2", "cmd-1")) is not None
    await marks.memory.release("order:c2", "cmd-1", "e1")
    assert await marks.memory.recall("order:c2", "cmd-1") is None


async def test_the_new_aggregate_filter_answers_only_when_ready_and_never_for_a_noted_one(
    marks: Marking,
) -> None:
    fresh = mark("OrderPlaced", ["none"], key="order:f1")
    assert (
        await marks.marker.check_and_mark(fresh)
    ).status == "missing"  # not ready: ask the store
    await marks.marker.note_aggregates(["order:f2"])
    await marks.marker.mark_filter_ready()
    assert await marks.marker.filter_ready()
    new = await marks.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f3"))
    assert (new.status, new.after) == ("marked", NEW_AGGREGATE)  # certainly new: no store read
    noted = await marks.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f2"))
    assert noted.status == "missing"  # it exists: the store decides
    await marks.lose_filter()  # a flush or an eviction
    assert not await marks.marker.filter_ready()
    lost = await marks.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f4"))
    assert lost.status == "missing"  # a lost filter never answers "new"


async def test_any_accepts_every_marked_type_and_still_marks(marks: Marking) -> None:
    # after=ANY travels as "*": a new aggregate, a marked one, and the store's fallback all pass.
    written = mark("NoteWritten", ["*"], key="note:a1", fallback=NEW_AGGREGATE)
    first = await marks.marker.check_and_mark(written)
    assert (first.status, first.current) == ("marked", None)
    second = await marks.marker.check_and_mark(mark("Pinned", ["*"], key="note:a1"))
    assert (second.status, second.current, second.after) == (
        "marked",
        "NoteWritten",
        written.event_id,
    )
    fallback = await marks.marker.check_and_mark(
        mark("Pinned", ["*"], key="note:a2", fallback="Archived|x1")
    )
    assert (fallback.status, fallback.current) == ("marked", "Archived")
    # A checked type after it is judged against the mark ANY left behind.
    refused = await marks.marker.check_and_mark(mark("Archived", ["NoteWritten"], key="note:a1"))
    assert (refused.status, refused.current) == ("rejected", "Pinned")
