"""SnapshotLadder contract, on memory and MongoDB: the newest rung at or below a version or time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.contracts.conftest import STORES
from workers.adapters.memory import MemorySnapshotLadder
from workers.adapters.mongo import MongoSnapshotLadder, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.ports import Snapshot, SnapshotLadder

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=STORES)
async def ladder(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[SnapshotLadder]:
    if request.param == "memory":
        yield MemorySnapshotLadder()
        return
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        real = MongoSnapshotLadder(database(client, unique_name))
        await real.ensure_indexes()
        yield real
    finally:
        await client.drop_database(unique_name)
        await client.close()


def rung(version: int, aggregate_id: str = "c1") -> Snapshot:
    return Snapshot("counter", aggregate_id, version, {"total": version}, T0)


async def test_the_newest_rung_at_or_below_a_version_or_a_moment(ladder: SnapshotLadder) -> None:
    for v in (1000, 2000, 3000):
        await ladder.add(rung(v), last_at=T0 + timedelta(seconds=v))
    await ladder.add(rung(5000, "other"), last_at=T0)
    ref = ("counter", "c1")
    assert (await ladder.below(ref)) == rung(3000)
    assert (await ladder.below(ref, version=2999)) == rung(2000)
    assert (await ladder.below(ref, version=2000)) == rung(2000)
    assert await ladder.below(ref, version=999) is None
    assert (await ladder.below(ref, as_of=T0 + timedelta(seconds=2500))) == rung(2000)
    found = await ladder.below(ref, version=2500, as_of=T0 + timedelta(seconds=1500))
    assert found == rung(1000)
    assert await ladder.below(("counter", "nobody")) is None


async def test_adding_a_rung_twice_keeps_the_first(ladder: SnapshotLadder) -> None:
    await ladder.add(rung(1000), last_at=T0)
    await ladder.add(Snapshot("counter", "c1", 1000, {"total": -1}, T0), last_at=T0)
    found = await ladder.below(("counter", "c1"))
    assert found is not None and found.state == {"total": 1000}


async def test_versions_lists_the_rungs_and_remove_drops_only_those_named(
    ladder: SnapshotLadder,
) -> None:
    for v in (3000, 1000, 2000):
        await ladder.add(rung(v), last_at=T0 + timedelta(seconds=v))
    await ladder.add(rung(1000, "other"), last_at=T0)
    ref = ("counter", "c1")
    assert await ladder.versions(ref) == [1000, 2000, 3000]
    assert await ladder.versions(("counter", "nobody")) == []
    await ladder.remove(ref, [2000, 4000])  # 4000 was never there: ignored
    await ladder.remove(ref, [])
    assert await ladder.versions(ref) == [1000, 3000]
    assert (await ladder.below(ref, version=2999)) == rung(1000)
    assert await ladder.versions(("counter", "other")) == [1000]  # another aggregate untouched
