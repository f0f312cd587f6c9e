"""A storage collection's history within bounds: a retention moves older events to the archive
(``storage_domain(..., retention=...)``, the fleet's ``Archiver`` behind ``eventfleet archive``),
and ``get_missing_events`` reads hot and archive as one history, or says the history is
compacted, never a silent gap. Also the per-operation event names a collection declares.
Each test runs on both document stores (memory and MongoDB)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.domain import Domains, Retention
from snapshot_rules.replay import State
from tests.storage.helpers import rebuild
from topics.envelope import Event, utc_now
from topics.errors import InvalidInput
from workers.adapters.memory import MemoryDocuments, MemorySnapshotStore
from workers.adapters.mongo import MongoDocuments, MongoSnapshotStore, connect, database
from workers.ports import Snapshot, SnapshotStore
from workers.roles.ops.archive import Archiver, TieredEvents
from workers.storage import (
    ChangeEvents,
    DocumentDeleted,
    EventSourcedStorage,
    EventTypes,
    HistoryCompacted,
    storage_domain,
)
from workers.storage.ports import DocumentStore

NAMED = EventTypes.named(created="GameStarted", updated="GameMoved", deleted="GameEnded")


@dataclass
class Rig:
    documents: DocumentStore
    snapshots: SnapshotStore


@pytest.fixture(params=["memory", "mongo"])
async def rig(request: pytest.FixtureRequest, stack: Any, unique_name: str) -> AsyncIterator[Rig]:
    if request.param == "memory":
        yield Rig(MemoryDocuments("games"), MemorySnapshotStore())
        return
    client = connect(stack.urls.mongo_url, timeout_ms=10_000)
    db = database(client, unique_name)
    try:
        yield Rig(MongoDocuments(db, "games"), MongoSnapshotStore(db))
    finally:
        await client.drop_database(unique_name)
        await client.close()


async def eleven_versions(storage: EventSourcedStorage) -> dict[str, Any]:
    await storage.find_one_and_upsert({"_id": "g1", "gold": 0}, client_id="server")
    for gold in range(1, 11):
        await storage.find_one_and_update(
            "g1", lambda doc, gold=gold: {**doc, "gold": gold}, client_id="server"
        )
    return await storage.get("g1")


async def archive(rig: Rig, retention: Retention, types: EventTypes | None = None) -> list[Any]:
    """What ``eventfleet archive`` does for the collection: its snapshot covers the head, then
    the Archiver moves what the storage domain's retention lets go."""
    domain = storage_domain("games", retention=retention, event_types=types)
    await rig.snapshots.save(Snapshot("games", "g1", 11, {"gold": 10}, utc_now()))
    tiers = TieredEvents(rig.documents.events, rig.documents.archive)  # type: ignore[arg-type]
    return await Archiver(tiers, rig.snapshots, Domains([domain])).run()


def versions(events: list[Event]) -> list[int]:
    return [e.version or 0 for e in events]


async def test_an_archived_prefix_is_read_with_the_hot_part_as_one_history(rig: Rig) -> None:
    storage = EventSourcedStorage(rig.documents)
    document = await eleven_versions(storage)
    [moved] = await archive(rig, Retention(keep_last=3))
    assert (moved.from_version, moved.through_version) == (1, 8)
    hot = await rig.documents.events.select(("games", "g1"))
    assert versions(hot) == [9, 10, 11]  # what the storage alone read before: a silent gap
    everything = await storage.get_missing_events("g1", after_version=0)
    assert versions(everything) == list(range(1, 12))
    assert rebuild(everything) == {k: v for k, v in document.items() if k not in ("_id", "version")}
    assert versions(await storage.get_missing_events("g1", after_version=5)) == list(range(6, 12))
    assert versions(await storage.get_missing_events("g1", after_version=9)) == [10, 11]
    assert await storage.get_missing_events("g1", after_version=11) == []
    # the fleet's own reads (/events, replay) go through the same two tiers
    tiers = TieredEvents(rig.documents.events, rig.documents.archive)  # type: ignore[arg-type]
    assert versions(await tiers.select(("games", "g1"))) == list(range(1, 12))
    # the storage goes on writing at the head after its history moved
    await storage.find_one_and_update("g1", lambda d: {**d, "gold": 11}, client_id="server")
    assert versions(await storage.get_missing_events("g1", after_version=7)) == list(range(8, 13))


async def test_a_history_missing_from_both_tiers_is_said_never_a_gap(rig: Rig) -> None:
    storage = EventSourcedStorage(rig.documents)
    await eleven_versions(storage)
    await archive(rig, Retention(keep_last=3))
    await rig.documents.archive.remove_through(("games", "g1"), 4)  # type: ignore[attr-defined]
    with pytest.raises(HistoryCompacted, match=r"compacted before version 5.*fetch the document"):
        await storage.get_missing_events("g1", after_version=0)
    with pytest.raises(HistoryCompacted) as raised:
        await storage.get_missing_events("g1", after_version=2)
    assert (raised.value.after_version, raised.value.whole_from) == (2, 5)
    assert versions(await storage.get_missing_events("g1", after_version=4)) == list(range(5, 12))
    await rig.documents.archive.remove_through(("games", "g1"), 8)  # type: ignore[attr-defined]
    with pytest.raises(HistoryCompacted, match="compacted before version 9"):
        await storage.get_missing_events("g1", after_version=0)
    assert versions(await storage.get_missing_events("g1", after_version=8)) == [9, 10, 11]


async def test_a_collection_without_retention_keeps_everything_hot(rig: Rig) -> None:
    storage = EventSourcedStorage(rig.documents)
    await eleven_versions(storage)
    await rig.snapshots.save(Snapshot("games", "g1", 11, {"gold": 10}, utc_now()))
    tiers = TieredEvents(rig.documents.events, rig.documents.archive)  # type: ignore[arg-type]
    assert await Archiver(tiers, rig.snapshots, Domains([storage_domain("games")])).run() == []
    assert versions(await storage.get_missing_events("g1", after_version=0)) == list(range(1, 12))


async def test_named_event_types_are_written_folded_and_archived(rig: Rig) -> None:
    storage = EventSourcedStorage(rig.documents, events=ChangeEvents(event_types=NAMED))
    await eleven_versions(storage)
    await storage.delete_one("g1", client_id="server")
    events = await storage.get_missing_events("g1", after_version=0)
    assert [e.type for e in events] == ["GameStarted", *["GameMoved"] * 10, "GameEnded"]
    domain = storage_domain("games", event_types=NAMED)
    assert set(domain.events) == {"GameStarted", "GameMoved", "GameEnded"}
    state: State | None = None
    for event in events[:11]:
        state = domain.reducer(state, event)
    assert state == {"gold": 10}
    assert domain.reducer(state, events[11]) == {"_deleted": True}


def test_bad_event_types_and_retentions_are_refused_with_the_fix_named() -> None:
    documents = MemoryDocuments("games")
    with pytest.raises(InvalidInput, match="three different names"):
        EventTypes.named(created="GameSaved", updated="GameSaved", deleted="GameEnded")
    with pytest.raises(InvalidInput, match="deleted='game ended' is not valid"):
        EventTypes.named(created="GameStarted", updated="GameMoved", deleted="game ended")
    with pytest.raises(InvalidInput, match="not both"):
        EventSourcedStorage(documents, events=ChangeEvents(type_prefix="Game", event_types=NAMED))
    with pytest.raises(InvalidInput, match="three different names"):
        EventSourcedStorage(documents, events=ChangeEvents(event_types=EventTypes("A", "A", "B")))
    with pytest.raises(InvalidInput, match="not both"):
        storage_domain("games", type_prefix="Game", event_types=NAMED)
    with pytest.raises(ValueError, match="retention must be a Retention"):
        storage_domain("games", retention={"keep_last": 3})  # type: ignore[arg-type]
    assert storage_domain("games", retention=Retention(keep_last=3)).retention == Retention(
        keep_last=3
    )


async def test_bad_after_versions_are_refused_before_anything_is_read(rig: Rig) -> None:
    storage = EventSourcedStorage(rig.documents)
    await eleven_versions(storage)
    for bad in (-1, "3", 2.0, True):
        with pytest.raises(InvalidInput, match="after_version"):
            await storage.get_missing_events("g1", after_version=bad)  # type: ignore[arg-type]


async def test_the_version_field_is_a_setting_of_the_storage(rig: Rig) -> None:
    storage = EventSourcedStorage(
        rig.documents, events=ChangeEvents(event_types=NAMED, version_field="rev")
    )
    created = await storage.find_one_and_upsert({"_id": "g1", "gold": 0}, client_id="a")
    assert created == {"_id": "g1", "rev": 1, "gold": 0}
    updated, diff = await storage.find_one_and_update(
        "g1", lambda d: {**d, "gold": 5}, client_id="a"
    )
    assert updated == {"_id": "g1", "rev": 2, "gold": 5} and diff == {"gold": 5}
    assert "version" not in await storage.get("g1")
    # another writer on the same document races the first: the version check reads "rev"
    other = EventSourcedStorage(
        rig.documents, events=ChangeEvents(event_types=NAMED, version_field="rev")
    )
    await asyncio.gather(*(
        s.find_one_and_update("g1", lambda d: {**d, "gold": d["gold"] + 1}, client_id="b")
        for s in (storage, other, storage, other)
    ))  # fmt: skip
    assert await storage.get("g1") == {"_id": "g1", "rev": 6, "gold": 9}
    events = await storage.get_missing_events("g1", after_version=0)
    assert [e.version for e in events] == [1, 2, 3, 4, 5, 6]
    assert rebuild(events) == {"gold": 9}  # the field is never part of the diffs
    with pytest.raises(InvalidInput, match="the edit changed 'rev' from 6 to 7"):
        await storage.find_one_and_update("g1", lambda d: {**d, "rev": 7}, client_id="a")
    with pytest.raises(InvalidInput, match="the storage sets 'rev'"):
        await storage.find_one_and_upsert({"_id": "g2", "rev": 3}, client_id="a")
    assert await storage.delete_one("g1", client_id="a") is True
    with pytest.raises(DocumentDeleted, match="deleted at version 7"):
        await storage.get("g1")
    # a field named "version" is content like any other when the version lives elsewhere
    await storage.find_one_and_upsert({"_id": "g3", "version": "1.2"}, client_id="a")
    assert await storage.get("g3") == {"_id": "g3", "rev": 1, "version": "1.2"}


@pytest.mark.parametrize("bad", ["", "_id", "a.b", "$rev", "_deleted", "9lives", 3, None])
def test_a_bad_version_field_is_refused_with_the_fix_named(bad: object) -> None:
    with pytest.raises(InvalidInput, match=r"version_field .* is not valid; use a top-level"):
        events = ChangeEvents(version_field=bad)  # type: ignore[arg-type]
        EventSourcedStorage(MemoryDocuments("games"), events=events)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 25),
    st.integers(1, 25),
    st.integers(0, 25),
    st.one_of(st.none(), st.integers(1, 25)),
)
def test_any_read_after_any_archive_is_the_whole_history_or_says_where_it_starts(
    changes: int, keep_last: int, after: int, lost_through: int | None
) -> None:
    """Memory store: n versions, a retention keeping ``keep_last``, the archive's prefix through
    ``lost_through`` removed outside the fleet; every read is whole or HistoryCompacted."""

    async def scenario() -> None:
        rig = Rig(MemoryDocuments("games"), MemorySnapshotStore())
        storage = EventSourcedStorage(rig.documents)
        await storage.find_one_and_upsert({"_id": "g1", "gold": 0}, client_id="s")
        for gold in range(1, changes):
            await storage.find_one_and_update(
                "g1", lambda d, gold=gold: {**d, "gold": gold}, client_id="s"
            )
        await rig.snapshots.save(Snapshot("games", "g1", changes, {}, utc_now()))
        domain = storage_domain("games", retention=Retention(keep_last=keep_last))
        tiers = TieredEvents(rig.documents.events, rig.documents.archive)  # type: ignore[arg-type]
        await Archiver(tiers, rig.snapshots, Domains([domain]), batch=4).run()
        archived = max(0, min(changes - 1, changes - keep_last))
        lost = 0 if lost_through is None else min(lost_through, archived)
        if lost:
            await rig.documents.archive.remove_through(("games", "g1"), lost)  # type: ignore[attr-defined]
        start = min(after, changes)
        if start < lost:
            with pytest.raises(HistoryCompacted) as raised:
                await storage.get_missing_events("g1", after_version=start)
            assert raised.value.whole_from == lost + 1
        else:
            events = await storage.get_missing_events("g1", after_version=start)
            assert versions(events) == list(range(start + 1, changes + 1))

    asyncio.run(scenario())
