"""Concurrent edits of one document: each applied once, contiguous versions, events that rebuild it."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.storage.helpers import Document, canonical, content, raw_doc, rebuild
from topics.errors import ConcurrencyConflict
from workers.adapters.mongo import MongoDocuments
from workers.storage import EventSourcedStorage, apply_patch

TASKS, INCREMENTS = 20, 5


@pytest.mark.parametrize("transactions", [True, False], ids=["transaction", "intent"])
async def test_concurrent_edits_are_each_applied_once_with_one_event_per_version(
    db: AsyncDatabase[Document], transactions: bool
) -> None:
    games = EventSourcedStorage(
        MongoDocuments(db, "games", transactions=transactions), max_retries=1_000
    )
    await games.find_one_and_upsert(
        {"_id": "g1", "gold": 0, "log": [], "by": {}}, client_id="game-server"
    )

    async def player(n: int) -> None:
        for i in range(INCREMENTS):

            def earn(game: Document, n: int = n, i: int = i) -> Document:
                game["gold"] += 1
                game["log"].append(f"{n}.{i}")
                game["by"][f"p{n}"] = game["by"].get(f"p{n}", 0) + 1
                return game

            await games.find_one_and_update("g1", earn, client_id=f"player-{n}")

    await asyncio.gather(*(player(n) for n in range(TASKS)))

    final = await games.get("g1")
    assert games.uses_transactions is transactions
    assert final["gold"] == TASKS * INCREMENTS
    assert sorted(final["log"]) == sorted(
        f"{n}.{i}" for n in range(TASKS) for i in range(INCREMENTS)
    )
    assert final["by"] == {f"p{n}": INCREMENTS for n in range(TASKS)}
    assert final["version"] == 1 + TASKS * INCREMENTS

    events = await games.get_missing_events("g1", after_version=0)
    assert [e.version for e in events] == list(range(1, final["version"] + 1))
    assert [e.type for e in events] == ["GamesCreated"] + ["GamesUpdated"] * (TASKS * INCREMENTS)
    assert canonical(rebuild(events)) == canonical(content(final))
    # Every event names the client that made the change, and each player made INCREMENTS.
    clients = [e.metadata.client_id for e in events[1:]]
    assert all(clients.count(f"player-{n}") == INCREMENTS for n in range(TASKS))
    raw = await raw_doc(db, "games", "g1")
    assert raw is not None and "_pending_event" not in raw

    for seen in range(final["version"] + 1):
        rest = await games.get_missing_events("g1", after_version=seen)
        assert [e.id for e in rest] == [e.id for e in events[seen:]]
        state = rebuild(events[:seen])
        for event in rest:  # a client at any version catches up to the same document
            state = apply_patch(event.data["diff"], state)
        assert canonical(state) == canonical(content(final))
    assert await games.get_missing_events("g1", after_version=final["version"] + 5) == []
    await games.close()


async def test_a_change_that_keeps_losing_gives_up_with_a_conflict_and_writes_nothing(
    db: AsyncDatabase[Document], other_db: AsyncDatabase[Document]
) -> None:
    games = EventSourcedStorage(MongoDocuments(db, "games"), max_retries=2)
    rival = EventSourcedStorage(MongoDocuments(other_db, "games"))
    await games.find_one_and_upsert({"_id": "g1", "gold": 0}, client_id="game-server")
    attempts = 0

    async def slow_edit(game: Document) -> Document:
        # Another process changes the document after each read, before this write.
        nonlocal attempts
        attempts += 1
        await rival.find_one_and_update("g1", _add_silver, client_id="admin-panel")
        return {**game, "gold": game["gold"] + 1}

    with pytest.raises(ConcurrencyConflict) as caught:
        await games.find_one_and_update("g1", slow_edit, client_id="game-server")
    message = str(caught.value)
    assert "games g1" in message and "3 attempts" in message and "versions 1 to 3" in message
    assert attempts == 3
    final = await games.get("g1")
    assert final["gold"] == 0 and final["silver"] == 3 and final["version"] == 4
    events = await games.get_missing_events("g1", after_version=1)
    assert {e.metadata.client_id for e in events} == {"admin-panel"}


def _add_silver(game: Document) -> Document:
    return {**game, "silver": game.get("silver", 0) + 1}
