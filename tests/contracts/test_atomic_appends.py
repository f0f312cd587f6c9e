"""The AtomicAppends contract: events of several aggregates stored all or none, on every backend.

The same uniqueness as ``append`` (an id across the store, a version per aggregate), but a
conflict anywhere stores nothing at all, where ``append`` keeps what came before it. A store
without transactions (the in-memory one told so; SecantusDB started ``--standalone``, which
reports itself as a standalone mongod does) refuses before anything is written.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from topics.envelope import Event, new_event, utc_now
from topics.errors import StoreUnavailable, TransactionsUnsupported
from topics.jsonvalue import Json
from workers.adapters.memory import MemoryEventStore
from workers.adapters.mongo import MongoEventStore, connect, database
from workers.ports import AppendConflict, StoredEvents

from .backends import Backend, backend_claiming

backend = backend_claiming("transactions")


def one(aggregate_type: str, aggregate_id: str, version: int, **data: Json) -> Event:
    return new_event(aggregate_type, aggregate_id, "Changed", data, version=version)


async def everything(backend: Backend, *refs: tuple[str, str]) -> dict[tuple[str, str], list[int]]:
    return {ref: [e.version or 0 for e in await backend.events.select(ref)] for ref in refs}


async def test_events_of_several_aggregates_are_stored_together(backend: Backend) -> None:
    events, atomic = backend.events, backend.atomic
    await events.append([one("account", "a1", 1)])
    together = [one("account", "a1", 2), one("account", "a2", 1), one("order", "o1", 1)]
    await atomic.append_atomically(together, pending_publish=True)
    assert await events.select(("account", "a1"), after=1) == together[:1]
    assert await events.select(("account", "a2")) == together[1:2]
    assert await events.select(("order", "o1")) == together[2:]
    if "pending" in backend.claims:
        flagged = await backend.pending.pending(older_than=utc_now() + timedelta(days=1), limit=10)
        assert {e.id for e in flagged} == {e.id for e in together}
    await atomic.append_atomically([])  # nothing to do is not an error


async def test_a_taken_version_on_the_third_aggregate_stores_nothing(backend: Backend) -> None:
    events, atomic = backend.events, backend.atomic
    taken = one("account", "c3", 1, who="first")
    await events.append([taken])
    together = [one("account", "c1", 1), one("account", "c2", 1), one("account", "c3", 1)]
    with pytest.raises(AppendConflict) as caught:
        await atomic.append_atomically(together, pending_publish=True)
    conflict = caught.value
    assert (conflict.inserted, conflict.failed, conflict.id_taken) == (0, together[2], False)
    assert conflict.retriable and "account c3: version 1 is already stored" in str(conflict)
    refs = (("account", "c1"), ("account", "c2"), ("account", "c3"))
    assert await everything(backend, *refs) == {refs[0]: [], refs[1]: [], refs[2]: [1]}
    assert await events.select(refs[2]) == [taken]
    if "pending" in backend.claims:
        later = utc_now() + timedelta(days=1)
        assert await backend.pending.pending(older_than=later, limit=10) == []


async def test_a_stored_id_is_told_as_such_and_nothing_is_stored(backend: Backend) -> None:
    events, atomic = backend.events, backend.atomic
    stored = one("account", "d1", 1)
    await events.append([stored])
    again = [one("account", "d2", 1), stored]
    with pytest.raises(AppendConflict) as caught:
        await atomic.append_atomically(again)
    assert (caught.value.inserted, caught.value.failed, caught.value.id_taken) == (0, stored, True)
    assert await events.select(("account", "d2")) == []


async def test_one_event_twice_or_one_version_twice_stores_nothing(backend: Backend) -> None:
    atomic = backend.atomic
    event = one("account", "e1", 1)
    with pytest.raises(AppendConflict) as twice:
        await atomic.append_atomically([event, event])
    a, b = one("account", "e2", 1, who="a"), one("account", "e2", 1, who="b")
    with pytest.raises(AppendConflict) as one_version:
        await atomic.append_atomically([one("account", "e3", 1), a, b])
    assert (twice.value.inserted, one_version.value.inserted) == (0, 0)
    assert one_version.value.failed == b and not one_version.value.id_taken
    refs = (("account", "e1"), ("account", "e2"), ("account", "e3"))
    assert await everything(backend, *refs) == {ref: [] for ref in refs}


async def test_unversioned_events_are_refused_before_anything_is_written(backend: Backend) -> None:
    unversioned = new_event("account", "f2", "Changed", {})
    with pytest.raises(ValueError, match="no version"):
        await backend.atomic.append_atomically([one("account", "f1", 1), unversioned])
    assert await backend.events.select(("account", "f1")) == []


async def test_of_concurrent_writers_of_overlapping_aggregates_exactly_one_wins(
    backend: Backend,
) -> None:
    """Each writes version 1 of g1 and of its own second aggregate, and g2's version 1 too:
    one stores all three, every other none of its own (not even its own aggregate's)."""
    writers = [
        [one("account", f"g-own-{i}", 1), one("account", "g1", 1, w=i), one("account", "g2", 1)]
        for i in range(6)
    ]
    results = await asyncio.gather(
        *(backend.atomic.append_atomically(w) for w in writers), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1, results
    assert all(isinstance(r, AppendConflict) and r.inserted == 0 for r in results if r is not None)
    winner = writers[results.index(None)]
    assert await backend.events.select(("account", "g1")) == [winner[1]]
    for i in range(6):
        own = await backend.events.select(("account", f"g-own-{i}"))
        assert own == ([winner[0]] if writers[i] is winner else [])


async def test_a_store_that_does_not_answer_raises_and_stores_nothing(backend: Backend) -> None:
    together = [one("account", "h1", 1), one("account", "h2", 1)]
    async with backend.outage() as down:
        with pytest.raises(StoreUnavailable) as caught:
            await Backend(backend.name, down, backend.outage).atomic.append_atomically(together)
        assert caught.value.retriable
    assert await everything(backend, ("account", "h1"), ("account", "h2")) == {
        ("account", "h1"): [], ("account", "h2"): [],
    }  # fmt: skip
    await backend.atomic.append_atomically(together)  # and once it answers, it is stored
    assert await backend.events.select(("account", "h2")) == together[1:]


@pytest.mark.parametrize("kind", ["memory", "mongo"])
async def test_a_store_without_transactions_refuses_before_writing(
    kind: str, standalone_url: str, unique_name: str
) -> None:
    client = connect(standalone_url, timeout_ms=5000) if kind == "mongo" else None
    events: StoredEvents = (
        MemoryEventStore(transactions=False)
        if client is None
        else MongoEventStore(database(client, unique_name))
    )
    try:
        with pytest.raises(TransactionsUnsupported) as caught:
            await events.append_atomically([one("account", "i1", 1), one("account", "i2", 1)])
        assert not caught.value.retriable
        assert "standalone mongod" in str(caught.value) and "replica set" in str(caught.value)
        assert "nothing was written" in str(caught.value)
        assert await events.select(("account", "i1")) == []
        await events.append([one("account", "i1", 1)])  # one aggregate's append needs none
        assert [e.version for e in await events.select(("account", "i1"))] == [1]
    finally:
        if client is not None:
            await client.drop_database(unique_name)
            await client.close()
