"""On a standalone server (no transactions, no change streams) the storage detects it and still holds."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.storage.helpers import Document, canonical, content, raw_doc, rebuild
from workers.adapters.mongo import MongoDocuments
from workers.storage import AFTER_DOCUMENT_WRITE, EventSourcedStorage, FaultPoint


class Crash(Exception):
    """Stands for the process dying."""


def _crash(point: FaultPoint) -> None:
    if point.point == AFTER_DOCUMENT_WRITE:
        raise Crash(point.point)


async def test_a_standalone_server_gets_the_intent_path(
    standalone_db: AsyncDatabase[Document],
) -> None:
    games = EventSourcedStorage(MongoDocuments(standalone_db, "games"), max_retries=500)
    await games.find_one_and_upsert({"_id": "g1", "gold": 0}, client_id="game-server")
    assert games.uses_transactions is False

    async def player(n: int) -> None:
        for _ in range(3):
            await games.find_one_and_update(
                "g1", lambda g: {**g, "gold": g["gold"] + 1}, client_id=f"player-{n}"
            )

    await asyncio.gather(*(player(n) for n in range(5)))
    crashing = EventSourcedStorage(MongoDocuments(standalone_db, "games", fault_hook=_crash))
    with pytest.raises(Crash):
        await crashing.find_one_and_update("g1", lambda g: {**g, "gold": 100}, client_id="c")
    raw = await raw_doc(standalone_db, "games", "g1")
    assert raw is not None and "_pending_event" in raw

    assert await games.recover() == 1
    doc = await games.get("g1")
    events = await games.get_missing_events("g1", after_version=0)
    assert doc["gold"] == 100 and doc["version"] == 17
    assert [e.version for e in events] == list(range(1, 18))
    assert canonical(rebuild(events)) == canonical(content(doc))
