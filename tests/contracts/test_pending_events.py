"""The ``PendingEvents`` capability, on every backend that claims it: events stored flagged for
publishing are listed until their flag is cleared, and a store that does not answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.waiting import within
from topics.envelope import new_event, utc_now
from topics.errors import StoreUnavailable

from .backends import Backend, backend_claiming, history

backend = backend_claiming("pending")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_pending_lists_flagged_events_until_cleared(backend: Backend) -> None:
    events, flags = backend.events, backend.pending
    old = [
        new_event("order", agg, "OrderPaid", {}, version=v, occurred_at=T0 + timedelta(seconds=v))
        for agg in ("p2", "p1")
        for v in (1, 2)
    ]
    fresh = new_event(
        "order", "p3", "OrderPaid", {}, version=1, occurred_at=T0 + timedelta(hours=1)
    )
    await events.append(old, pending_publish=True)
    await events.append([fresh], pending_publish=True)
    await events.append(history("p0", 2))  # stored and published at once: never flagged
    cutoff = T0 + timedelta(minutes=1)
    by_aggregate = [old[2], old[3], old[0], old[1]]  # p1 before p2, each by version
    assert await flags.pending(older_than=cutoff, limit=10) == by_aggregate
    assert await flags.pending(older_than=cutoff, limit=3) == by_aggregate[:3]
    assert await flags.pending(older_than=cutoff, limit=0) == by_aggregate  # 0: no limit
    assert await flags.pending(older_than=T0 + timedelta(hours=2), limit=10) == [
        *by_aggregate,
        fresh,
    ]
    assert await flags.pending_before(("order", "p1"), 2) == [old[2]]
    assert await flags.pending_before(("order", "p1"), 1) == []
    assert await flags.pending_before(("order", "nobody"), 5) == []
    await flags.clear_pending([old[2].id, old[3].id, "not-an-event"])
    assert await flags.pending(older_than=cutoff, limit=10) == [old[0], old[1]]
    await flags.clear_pending([])
    assert len(await events.select(("order", "p1"))) == 2  # clearing the flag keeps the event


async def test_each_call_raises_store_unavailable_when_the_store_is_down(
    backend: Backend,
) -> None:
    [kept] = history("u1", 1)
    await backend.events.append([kept], pending_publish=True)
    async with backend.outage() as down:
        flags = Backend(backend.name, down, backend.outage).pending
        calls = [
            flags.pending(older_than=utc_now(), limit=5),
            flags.pending_before(("order", "u1"), 2),
            flags.clear_pending([kept.id]),
        ]
        results = await within(  # all at once: each waits out the client's bound
            asyncio.gather(*calls, return_exceptions=True), timeout_s=30, what="every call told"
        )
        for result in results:
            assert isinstance(result, StoreUnavailable) and result.retriable, result
    # the clear during the outage cleared nothing
    assert await backend.pending.pending(older_than=utc_now(), limit=5) == [kept]
