"""The SnapshotStore contract: one snapshot per aggregate that never moves backwards."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from topics.envelope import utc_now
from topics.errors import StoreUnavailable
from workers.ports import Snapshot

from .conftest import Stores


def snap(version: int, aggregate_id: str = "s1") -> Snapshot:
    return Snapshot("order", aggregate_id, version, {"v": version}, utc_now())


async def test_snapshots_never_move_backwards(stores: Stores) -> None:
    snapshots = stores.snapshots
    ref = ("order", "s1")
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


async def test_a_saved_snapshot_loads_as_it_was_saved(stores: Stores) -> None:
    taken = datetime(2026, 3, 1, 12, 0, 0, 987654, tzinfo=UTC)
    state = {"status": "paid", "items": ({"sku": "a", "qty": 2},), "total": 12.5}
    assert await stores.snapshots.save(Snapshot("order", "s2", 4, state, taken))
    loaded = await stores.snapshots.load(("order", "s2"))
    # Times to the millisecond in UTC, tuples as lists: what a document store keeps.
    assert loaded == Snapshot(
        "order",
        "s2",
        4,
        {"status": "paid", "items": [{"sku": "a", "qty": 2}], "total": 12.5},
        taken.replace(microsecond=987000),
    )
    assert loaded.state is not state
    loaded.state["status"] = "changed by a reader"
    again = await stores.snapshots.load(("order", "s2"))
    assert again is not None and again.state["status"] == "paid"


async def test_load_many_gives_each_aggregate_once(stores: Stores) -> None:
    for aggregate_id, version in (("a", 2), ("b", 7)):
        assert await stores.snapshots.save(snap(version, aggregate_id))
    refs = [("order", "a"), ("order", "b"), ("order", "a"), ("account", "a")]
    found = await stores.snapshots.load_many(refs)
    assert {ref: s.version for ref, s in found.items()} == {("order", "a"): 2, ("order", "b"): 7}
    assert await stores.snapshots.load_many([]) == {}


async def test_every_call_raises_store_unavailable_when_the_store_is_down(
    stores: Stores,
) -> None:
    assert await stores.snapshots.save(snap(1))
    async with stores.outage() as down:
        results = await asyncio.gather(
            down.snapshots.load(("order", "s1")),
            down.snapshots.load_many([("order", "s1")]),
            down.snapshots.save(snap(2)),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreUnavailable) and r.retriable for r in results), results
        assert await down.snapshots.load_many([]) == {}  # no round trip, no error
    loaded = await stores.snapshots.load(("order", "s1"))
    assert loaded is not None and loaded.version == 1  # the save during the outage wrote nothing


@pytest.mark.parametrize("version", [0, -1])
async def test_the_store_does_not_judge_versions(stores: Stores, version: int) -> None:
    # Callers never save version 0 (StateLoader.save refuses it); the store only compares.
    assert await stores.snapshots.save(snap(version, "odd"))
    assert not await stores.snapshots.save(snap(version, "odd"))
    assert await stores.snapshots.save(snap(version + 1, "odd"))
