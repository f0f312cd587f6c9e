"""A crash between the document write and the event write: after recovery they agree.

Transactions: the change and its event commit together or not at all. Without them
(intent path): the document carries its pending event; recovery (any access, or
``recover()``) stores the event, so the change is kept together with its event.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from bson import json_util
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.storage.helpers import Document, canonical, content, raw_doc, raw_events, rebuild
from tests.waiting import within
from topics.errors import ConcurrencyConflict
from workers.adapters.mongo import MongoDocuments
from workers.storage import AFTER_DOCUMENT_WRITE, AFTER_EVENT_WRITE, EventSourcedStorage, FaultPoint

ROOT = Path(__file__).resolve().parents[2]
POINTS = [AFTER_DOCUMENT_WRITE, AFTER_EVENT_WRITE]


class Crash(Exception):
    """Stands for the process dying at a fault point."""


def crash_at(point: str) -> Any:
    def hook(reached: FaultPoint) -> None:
        if reached.point == point:
            raise Crash(point)

    return hook


async def _create(db: AsyncDatabase[Document], transactions: bool) -> EventSourcedStorage:
    games = EventSourcedStorage(MongoDocuments(db, "games", transactions=transactions))
    await games.find_one_and_upsert({"_id": "g1", "gold": 10}, client_id="game-server")
    return games


async def _agree(db: AsyncDatabase[Document], games: EventSourcedStorage, gold: int) -> None:
    """Document and events agree: one event per version, the diffs rebuild the document."""
    doc = await games.get("g1")
    events = await games.get_missing_events("g1", after_version=0)
    assert doc["gold"] == gold
    assert [e.version for e in events] == list(range(1, doc["version"] + 1))
    assert canonical(rebuild(events)) == canonical(content(doc))
    raw = await raw_doc(db, "games", "g1")
    assert raw is not None and "_pending_event" not in raw
    assert len(await raw_events(db, "games", "g1")) == doc["version"]


def _gain(game: Document) -> Document:
    return {**game, "gold": game["gold"] + 1}


@pytest.mark.parametrize("point", POINTS)
async def test_transaction_crash_leaves_neither_change_nor_event(
    db: AsyncDatabase[Document], point: str
) -> None:
    await _create(db, transactions=True)
    crashing = EventSourcedStorage(
        MongoDocuments(db, "games", transactions=True, fault_hook=crash_at(point))
    )
    with pytest.raises(Crash):
        await crashing.find_one_and_update("g1", _gain, client_id="game-server")
    assert crashing.uses_transactions is True
    assert await raw_doc(db, "games", "g1") == {"_id": "g1", "version": 1, "gold": 10}
    assert len(await raw_events(db, "games", "g1")) == 1

    restarted = EventSourcedStorage(MongoDocuments(db, "games", transactions=True))
    assert await restarted.recover() == 0
    await _agree(db, restarted, gold=10)
    await restarted.find_one_and_update("g1", _gain, client_id="game-server")  # not locked
    await _agree(db, restarted, gold=11)


async def test_intent_crash_after_the_document_write_is_completed_by_recovery(
    db: AsyncDatabase[Document],
) -> None:
    await _create(db, transactions=False)
    crashing = EventSourcedStorage(
        MongoDocuments(db, "games", transactions=False, fault_hook=crash_at(AFTER_DOCUMENT_WRITE))
    )
    with pytest.raises(Crash):
        await crashing.find_one_and_update("g1", _gain, client_id="game-server")
    raw = await raw_doc(db, "games", "g1")
    assert raw is not None and raw["gold"] == 11 and raw["_pending_event"]["version"] == 2
    assert len(await raw_events(db, "games", "g1")) == 1  # the change is there, its event not yet

    restarted = EventSourcedStorage(MongoDocuments(db, "games", transactions=False))
    assert await restarted.recover() == 1
    assert await restarted.recover() == 0
    await _agree(db, restarted, gold=11)
    [event] = await restarted.get_missing_events("g1", after_version=1)
    assert event.id == raw["_pending_event"]["_id"] and event.metadata.client_id == "game-server"


async def test_intent_crash_after_the_event_write_is_cleaned_up_once(
    db: AsyncDatabase[Document],
) -> None:
    await _create(db, transactions=False)
    crashing = EventSourcedStorage(
        MongoDocuments(db, "games", transactions=False, fault_hook=crash_at(AFTER_EVENT_WRITE))
    )
    with pytest.raises(Crash):
        await crashing.find_one_and_update("g1", _gain, client_id="game-server")
    assert len(await raw_events(db, "games", "g1")) == 2
    restarted = EventSourcedStorage(MongoDocuments(db, "games", transactions=False))
    assert await restarted.recover() == 1
    await _agree(db, restarted, gold=11)  # the event is stored once, the marker is gone


@pytest.mark.parametrize("access", ["get", "update", "get_missing_events"])
async def test_any_access_completes_an_interrupted_change_before_going_on(
    db: AsyncDatabase[Document], access: str
) -> None:
    await _create(db, transactions=False)
    crashing = EventSourcedStorage(
        MongoDocuments(db, "games", transactions=False, fault_hook=crash_at(AFTER_DOCUMENT_WRITE))
    )
    with pytest.raises(Crash):
        await crashing.find_one_and_update("g1", _gain, client_id="game-server")
    games = EventSourcedStorage(MongoDocuments(db, "games", transactions=False))
    if access == "get":
        assert (await games.get("g1"))["gold"] == 11
    elif access == "update":
        await games.find_one_and_update("g1", _gain, client_id="admin-panel")
    else:
        assert [e.version for e in await games.get_missing_events("g1", after_version=1)] == [2]
    await _agree(db, games, gold=12 if access == "update" else 11)


async def _run_child(url: str, name: str, transactions: bool, point: str) -> Any:
    """Run the change in a child that SIGKILLs itself at ``point``; return its session id."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.storage.crash_child",
        url,
        name,
        "true" if transactions else "false",
        point,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await within(process.communicate(), timeout_s=60, what="the child to die")
    assert process.returncode == -9, f"child did not die by SIGKILL: {stdout!r} {stderr!r}"
    said = stdout.decode().strip()
    assert said.startswith(f"dying at {point} "), said
    return json_util.loads(said.removeprefix(f"dying at {point} "))


@pytest.mark.parametrize("point", POINTS)
async def test_killed_process_without_transactions_is_recovered(
    stack: Any, db: AsyncDatabase[Document], point: str
) -> None:
    await _create(db, transactions=False)
    assert await _run_child(stack.urls.mongo_url, db.name, False, point) is None
    raw = await raw_doc(db, "games", "g1")
    assert raw is not None and raw["gold"] == 11 and "_pending_event" in raw

    restarted = EventSourcedStorage(MongoDocuments(db, "games", transactions=False))
    assert await restarted.recover() == 1
    await _agree(db, restarted, gold=11)


@pytest.mark.parametrize("point", POINTS)
async def test_killed_process_inside_a_transaction_leaves_nothing_committed(
    stack: Any, client: AsyncMongoClient[Document], db: AsyncDatabase[Document], point: str
) -> None:
    await _create(db, transactions=True)
    session_id = await _run_child(stack.urls.mongo_url, db.name, True, point)
    # Reads do not wait for the dead transaction: the document and its events are as they were.
    assert await raw_doc(db, "games", "g1") == {"_id": "g1", "version": 1, "gold": 10}
    assert len(await raw_events(db, "games", "g1")) == 1
    impatient = EventSourcedStorage(MongoDocuments(db, "games", transactions=True), max_retries=3)
    with pytest.raises(ConcurrencyConflict, match="stayed at version 1 but every write conflicted"):
        await impatient.find_one_and_update("g1", _gain, client_id="game-server")
    # The server aborts a dead client's transaction when it reaps the session (mongod:
    # transactionLifetimeLimitSeconds, 60 s); until then the document stays locked. End it now.
    await client.admin.command("killSessions", [session_id])

    restarted = EventSourcedStorage(MongoDocuments(db, "games", transactions=True))
    assert await restarted.recover() == 0
    await _agree(db, restarted, gold=10)
    await restarted.find_one_and_update("g1", _gain, client_id="game-server")
    await _agree(db, restarted, gold=11)
