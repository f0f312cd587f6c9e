"""The MongoDB event and snapshot stores against the real MongoDB protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from topics.envelope import Event, new_event, utc_now
from workers.adapters.mongo import MongoEventStore, MongoSnapshotStore, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.ports import AppendConflict, Snapshot


@pytest.fixture
async def stores(
    stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[tuple[MongoEventStore, MongoSnapshotStore]]:
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    db = database(client, unique_name)
    events = MongoEventStore(db)
    await events.ensure_indexes()
    yield events, MongoSnapshotStore(db)
    await client.drop_database(unique_name)
    await client.close()


def history(aggregate_id: str, n: int, *, start: int = 1) -> list[Event]:
    return [
        new_event("order", aggregate_id, "OrderPaid", {"n": v}, version=v)
        for v in range(start, start + n)
    ]


async def test_append_then_read_in_version_order(
    stores: tuple[MongoEventStore, MongoSnapshotStore],
) -> None:
    events, _ = stores
    written = history("o1", 5)
    await events.append(written)
    assert await events.read(("order", "o1")) == written
    assert await events.read(("order", "o1"), after_version=2, limit=2) == written[2:4]
    assert await events.read(("order", "o1"), to_version=3) == written[:3]
    assert await events.last_versions([("order", "o1"), ("order", "nobody")]) == {
        ("order", "o1"): 5
    }
    assert await events.last_event(("order", "o1")) == written[-1]
    assert await events.find([written[1].id, "not-there"]) == {written[1].id: written[1]}


async def test_as_of_reads_events_up_to_a_moment(
    stores: tuple[MongoEventStore, MongoSnapshotStore],
) -> None:
    events, _ = stores
    now = utc_now()
    written = [
        new_event("order", "t1", "OrderPaid", {}, version=v, occurred_at=now + timedelta(seconds=v))
        for v in (1, 2, 3)
    ]
    await events.append(written)
    assert await events.read(("order", "t1"), as_of=now + timedelta(seconds=2)) == written[:2]


async def test_a_taken_version_stops_the_append_where_it_conflicts(
    stores: tuple[MongoEventStore, MongoSnapshotStore],
) -> None:
    events, _ = stores
    await events.append(history("o2", 2))
    batch = [*history("o3", 2), *history("o2", 2, start=2)]  # o2 v2 is taken
    with pytest.raises(AppendConflict) as caught:
        await events.append(batch)
    assert (
        caught.value.inserted == 2 and caught.value.failed == batch[2] and not caught.value.id_taken
    )
    assert "another writer appended first" in str(caught.value)
    assert [e.version for e in await events.read(("order", "o2"))] == [1, 2]
    assert len(await events.read(("order", "o3"))) == 2  # the events before the conflict landed


async def test_a_redelivered_event_is_reported_as_such(
    stores: tuple[MongoEventStore, MongoSnapshotStore],
) -> None:
    events, _ = stores
    [first] = history("o4", 1)
    await events.append([first])
    with pytest.raises(AppendConflict) as caught:
        await events.append([first])
    assert caught.value.id_taken and caught.value.inserted == 0
    assert "redelivered" in str(caught.value)


async def test_unversioned_events_are_refused(
    stores: tuple[MongoEventStore, MongoSnapshotStore],
) -> None:
    events, _ = stores
    with pytest.raises(ValueError, match="no version"):
        await events.append([new_event("order", "o5", "OrderPaid", {})])
    assert await events.read(("order", "o5")) == []


async def test_concurrent_writers_of_one_version_exactly_one_wins(
    stores: tuple[MongoEventStore, MongoSnapshotStore],
) -> None:
    events, _ = stores
    contenders = [new_event("order", "o6", "OrderPaid", {"who": i}, version=1) for i in range(8)]
    results = await asyncio.gather(
        *(events.append([e]) for e in contenders), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, AppendConflict) for r in results if r is not None)


async def test_snapshots_never_move_backwards(
    stores: tuple[MongoEventStore, MongoSnapshotStore],
) -> None:
    _, snapshots = stores
    ref = ("order", "s1")

    def snap(version: int) -> Snapshot:
        return Snapshot("order", "s1", version, {"v": version}, utc_now())

    assert await snapshots.save(snap(5))
    assert not await snapshots.save(snap(3))  # a stale worker
    assert not await snapshots.save(snap(5))
    loaded = await snapshots.load(ref)
    assert loaded is not None and loaded.version == 5 and loaded.state == {"v": 5}
    racing = await asyncio.gather(*(snapshots.save(snap(v)) for v in range(6, 16)))
    loaded = await snapshots.load(ref)
    assert loaded is not None and loaded.version == 15 and any(racing)
    assert await snapshots.load(("order", "none")) is None
    assert set(await snapshots.load_many([ref, ("order", "none")])) == {ref}
