"""The storage's API on the real MongoDB protocol: create, update, delete, catch up, metrics."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from tests.storage.helpers import Document, canonical, content, raw_doc, raw_events, rebuild
from topics.envelope import decode, encode
from topics.errors import NotFound, StoreUnavailable
from workers.adapters.mongo import MongoDocuments, connect, database
from workers.metrics import create_metrics
from workers.storage import ChangeEvents, DocumentDeleted, EventSourcedStorage


@pytest.fixture
async def games(db: AsyncDatabase[Document]) -> EventSourcedStorage:
    storage = EventSourcedStorage(
        MongoDocuments(db, "game_states"), events=ChangeEvents(type_prefix="GameState")
    )
    await storage.find_one_and_upsert(
        {"_id": "g1", "gold": 100, "stats": {"hp": 10, "mp": 5}}, client_id="game-server"
    )
    return storage


async def test_upsert_creates_version_1_with_a_created_event(games: EventSourcedStorage) -> None:
    doc = await games.get("g1")
    assert doc == {"_id": "g1", "version": 1, "gold": 100, "stats": {"hp": 10, "mp": 5}}
    [created] = await games.get_missing_events("g1", after_version=0)
    assert (created.aggregate_type, created.aggregate_id, created.version) == (
        "game_states",
        "g1",
        1,
    )
    assert created.type == "GameStateCreated"
    assert created.metadata.client_id == "game-server"
    assert created.data == {
        "operation": "create",
        "diff": {"gold": 100, "stats": {"hp": 10, "mp": 5}},
        "changed_paths": ["gold", "stats"],
    }
    assert decode(encode(created)) == created  # the fleet's envelope codec takes it as it is


async def test_upsert_of_an_existing_document_returns_it_without_an_event(
    games: EventSourcedStorage,
) -> None:
    again = await games.find_one_and_upsert({"_id": "g1", "gold": 0}, client_id="other")
    assert again == await games.get("g1")
    assert again["gold"] == 100
    assert len(await games.get_missing_events("g1", after_version=0)) == 1


async def test_upsert_without_an_id_gets_a_fresh_one(games: EventSourcedStorage) -> None:
    doc = await games.find_one_and_upsert({"gold": 1}, client_id="game-server")
    assert re.fullmatch(r"[0-9a-f]{24}", doc["_id"]) and doc["version"] == 1
    assert await games.get(doc["_id"]) == doc


async def test_update_returns_the_document_and_its_merge_patch(
    games: EventSourcedStorage, db: AsyncDatabase[Document]
) -> None:
    def hit(game: Document) -> Document:
        game["stats"]["hp"] -= 3
        del game["gold"]
        game["items"] = ["sword"]
        return game

    doc, diff = await games.find_one_and_update("g1", hit, client_id="game-server")
    assert doc == {"_id": "g1", "version": 2, "stats": {"hp": 7, "mp": 5}, "items": ["sword"]}
    assert diff == {"stats": {"hp": 7}, "gold": None, "items": ["sword"]}
    event = (await games.get_missing_events("g1", after_version=1))[0]
    assert event.type == "GameStateUpdated" and event.version == 2
    assert event.data == {
        "operation": "update",
        "diff": diff,
        "changed_paths": ["gold", "items", "stats.hp"],
    }
    stored = await raw_events(db, "game_states", "g1")
    assert all(e["pending_publish"] is True for e in stored)  # for the fleet's outbox relay


async def test_an_edit_that_changes_nothing_writes_nothing(games: EventSourcedStorage) -> None:
    async def same_again(game: Document) -> Document:  # async edits work too
        return {**game, "gold": 100}

    doc, diff = await games.find_one_and_update("g1", same_again, client_id="game-server")
    assert diff == {} and doc["version"] == 1
    assert len(await games.get_missing_events("g1", after_version=0)) == 1


async def test_delete_leaves_a_tombstone_that_reads_say_deleted(
    games: EventSourcedStorage,
) -> None:
    assert await games.delete_one("g1", client_id="admin-panel") is True
    with pytest.raises(DocumentDeleted, match="game_states g1 was deleted at version 2"):
        await games.get("g1")
    with pytest.raises(NotFound):  # DocumentDeleted is a NotFound
        await games.find_one_and_update("g1", dict, client_id="admin-panel")
    assert await games.delete_one("g1", client_id="admin-panel") is False
    events = await games.get_missing_events("g1", after_version=1)
    assert [(e.type, e.version) for e in events] == [("GameStateDeleted", 2)]
    assert events[0].data == {
        "operation": "delete",
        "diff": None,
        "changed_paths": ["gold", "stats"],
    }

    again = await games.find_one_and_upsert({"_id": "g1", "gold": 1}, client_id="game-server")
    assert again == {"_id": "g1", "version": 3, "gold": 1}  # versions continue after the tombstone
    history = await games.get_missing_events("g1", after_version=0)
    assert [e.type for e in history] == ["GameStateCreated", "GameStateDeleted", "GameStateCreated"]
    assert canonical(rebuild(history)) == canonical(content(again))


async def test_missing_documents_are_not_found(games: EventSourcedStorage) -> None:
    for call in (
        games.get("nope"),
        games.find_one_and_update("nope", dict, client_id="c"),
        games.delete_one("nope", client_id="c"),
        games.get_missing_events("nope", after_version=0),
    ):
        with pytest.raises(NotFound, match="game_states nope does not exist"):
            await call


async def test_changes_are_counted_by_collection_and_operation(
    db: AsyncDatabase[Document],
) -> None:
    metrics = create_metrics(CollectorRegistry())
    users = EventSourcedStorage(MongoDocuments(db, "users"), metrics=metrics)
    await users.find_one_and_upsert({"_id": "u1", "name": "a"}, client_id="c")
    await users.find_one_and_upsert({"_id": "u1", "name": "a"}, client_id="c")
    await users.find_one_and_update("u1", lambda u: {**u, "name": "b"}, client_id="c")
    await users.find_one_and_update("u1", lambda u: {**u, "name": "b"}, client_id="c")
    await users.delete_one("u1", client_id="c")

    def count(operation: str) -> float | None:
        labels = {"collection": "users", "operation": operation}
        return metrics.registry.get_sample_value("eventfleet_storage_changes_total", labels)

    assert (count("create"), count("update"), count("delete")) == (1.0, 1.0, 1.0)


async def test_documents_are_stored_flat_without_markers(
    games: EventSourcedStorage, db: AsyncDatabase[Document]
) -> None:
    await games.find_one_and_update("g1", lambda g: {**g, "gold": 5}, client_id="c")
    assert await raw_doc(db, "game_states", "g1") == {
        "_id": "g1",
        "version": 2,
        "gold": 5,
        "stats": {"hp": 10, "mp": 5},
    }


async def test_an_unreachable_store_is_a_clear_retriable_error() -> None:
    client = connect("mongodb://127.0.0.1:1/?directConnection=true", timeout_ms=200)
    games = EventSourcedStorage(MongoDocuments(database(client, "nowhere"), "games"))
    try:
        with pytest.raises(StoreUnavailable, match="MongoDB did not answer") as caught:
            await games.find_one_and_upsert({"_id": "g1"}, client_id="c")
        assert caught.value.retriable
    finally:
        await client.close()
