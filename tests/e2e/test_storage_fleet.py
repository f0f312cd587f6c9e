"""EventSourcedStorage documents in the fleet: state, snapshots, routes and catch-up; no appends.

Runs its own fleet with ``EVENTFLEET_DOMAINS=tests.e2e.storage_domains:storage_test_domains``
(the defaults plus ``game_states``, snapshot every 3, routed to ``game_states``). The
test writes through the storage with no outbox: the fleet's outbox relay publishes.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.fleet import FleetProcess, wait_for
from tests.kafka_topics import produced_to, read_until
from topics.envelope import aggregate_key, decode, encode, from_dict, new_event
from workers.adapters.mongo import MongoDocuments, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.storage import ChangeEvents, EventSourcedStorage
from workers.storage.domain import TOMBSTONE

Document = dict[str, Any]
DOMAINS = "tests.e2e.storage_domains:storage_test_domains"


@dataclass
class Games:
    """The fleet, a storage on its database, and the two documents written before the tests."""

    fleet: FleetProcess
    storage: EventSourcedStorage
    alive: str  # created and updated five times: versions 1-6
    gone: str  # created, updated, deleted: versions 1-3


@pytest.fixture(scope="module")
async def storage_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    name = f"storage_{uuid.uuid4().hex[:8]}"
    # A short Kafka timeout makes the outbox relay pick stored events up after 2.5 s.
    process = FleetProcess.for_stack(
        stack, name, EVENTFLEET_DOMAINS=DOMAINS, EVENTFLEET_KAFKA_TIMEOUT_MS="1000"
    )
    await process.start()
    try:
        yield process
    finally:
        code = await process.stop()
        shutil.rmtree(Path(f"{name}-all-data"), ignore_errors=True)  # Faust's, in the cwd
        assert code == 0, f"the storage fleet exited with {code}:\n{process.log_tail()}"


@pytest.fixture(scope="module")
async def games(storage_fleet: FleetProcess) -> AsyncIterator[Games]:
    env = storage_fleet.env
    client = connect(env["EVENTFLEET_MONGO_URL"], timeout_ms=10_000)
    db = database(client, env["EVENTFLEET_MONGO_DATABASE"])
    storage = EventSourcedStorage(
        MongoDocuments(db, "game_states"), events=ChangeEvents(type_prefix="GameState"), outbox=None
    )
    tag = uuid.uuid4().hex[:8]
    alive, gone = f"g-{tag}", f"gone-{tag}"
    await storage.find_one_and_upsert(
        {"_id": alive, "player": "hero", "gold": 100, "bag": {"potion": 1}}, client_id="server"
    )
    for step in range(1, 6):

        def play(game: Document, step: int = step) -> Document:
            game["gold"] += 10 * step
            game["bag"] = {**game["bag"], f"gem{step}": step}
            if step == 3:
                del game["player"]  # a removal travels as null in the merge patch
            return game

        await storage.find_one_and_update(alive, play, client_id=f"client-{step % 2}")
    await storage.find_one_and_upsert({"_id": gone, "gold": 1}, client_id="server")
    await storage.find_one_and_update(gone, lambda g: {**g, "gold": 2}, client_id="server")
    assert await storage.delete_one(gone, client_id="admin")
    try:
        yield Games(storage_fleet, storage, alive, gone)
    finally:
        await storage.close()
        await client.close()


def content(doc: Document) -> Document:
    return {k: v for k, v in doc.items() if k not in ("_id", "version")}


async def test_state_and_snapshots_are_the_documents(games: Games) -> None:
    fleet, doc = games.fleet, await games.storage.get(games.alive)
    assert doc["version"] == 6 and "player" not in doc
    status, state = await fleet.get(f"/v1/game_states/{games.alive}/state")
    assert (status, state) == (200, {"version": 6, "state": content(doc)})
    status, state = await fleet.get(f"/v1/game_states/{games.gone}/state")
    assert (status, state) == (200, {"version": 3, "state": TOMBSTONE})
    status, state = await fleet.get(f"/v1/game_states/{games.alive}/state?at_version=3")
    assert status == 200 and state["state"]["gold"] == 100 + 10 + 20 and "player" in state["state"]

    async def snapshotted(doc_id: str, version: int) -> bool:
        status, body = await fleet.get(f"/v1/game_states/{doc_id}/snapshot")
        return status == 200 and body["version"] == version

    # every(3): the snapshotter fires at versions 3 and 6 once the relay has published.
    await wait_for(lambda: snapshotted(games.alive, 6), timeout_s=30, what="snapshot at 6")
    await wait_for(lambda: snapshotted(games.gone, 3), timeout_s=30, what="tombstone snapshot")
    _, snapshot = await fleet.get(f"/v1/game_states/{games.alive}/snapshot")
    assert snapshot["state"] == content(doc)
    _, snapshot = await fleet.get(f"/v1/game_states/{games.gone}/snapshot")
    assert snapshot["state"] == TOMBSTONE


async def test_the_routed_topic_carries_the_events_in_version_order(games: Games) -> None:
    fleet = games.fleet
    topic = f"{fleet.prefix}game_states"
    records = await read_until(fleet.env["EVENTFLEET_KAFKA_URL"], topic, expect=9, timeout_s=30)
    for doc_id, versions in ((games.alive, 6), (games.gone, 3)):
        ours = [r for r in records if r.key == aggregate_key("game_states", doc_id)]
        events = [decode(r.value) for r in ours]
        assert [e.version for e in events] == list(range(1, versions + 1)), doc_id
        stored = await games.storage.get_missing_events(doc_id, after_version=0)
        assert [e.id for e in events] == [e.id for e in stored]
        assert events[-1].data == stored[-1].data
    gone = [decode(r.value).type for r in records if decode(r.value).aggregate_id == games.gone]
    assert gone == ["GameStateCreated", "GameStateUpdated", "GameStateDeleted"]
    assert len(records) == 9, "an event was forwarded twice or a stranger's reached the topic"


async def test_catch_up_serves_the_storages_events(games: Games) -> None:
    fleet = games.fleet
    status, body = await fleet.get(f"/v1/game_states/{games.alive}/events?after_version=1")
    assert status == 200
    served = [from_dict(d) for d in body["events"]]
    assert served == await games.storage.get_missing_events(games.alive, after_version=1)
    assert [e.version for e in served] == [2, 3, 4, 5, 6]
    status, body = await fleet.get(f"/v1/game_states/{games.alive}/events?after_version=6")
    assert (status, body) == (200, {"events": [], "more": False, "next_after_version": 6})
    status, body = await fleet.get(f"/v1/game_states/never-{uuid.uuid4().hex[:6]}/events")
    assert status == 404 and body["error"] == "not_found"


async def test_appends_are_refused_and_write_nothing(games: Games) -> None:
    fleet = games.fleet
    kafka_url = fleet.env["EVENTFLEET_KAFKA_URL"]
    events_topic = f"{fleet.prefix}events"
    produced_before = await topic_size(kafka_url, events_topic)
    requests = [
        (games.alive, {"type": "GameStateUpdated", "data": {"diff": {"gold": 1}}}),
        (games.alive, {"type": "Cheat", "data": {}}),
        (f"new-{uuid.uuid4().hex[:6]}", {"type": "GameStateCreated", "data": {"diff": {}}}),
    ]
    for doc_id, body in requests:
        status, answer = await fleet.post(f"/v1/game_states/{doc_id}/events", body)
        assert status == 405, answer
        assert answer["error"] == "read_only"
        assert answer["message"].startswith(
            "game_states documents change only through EventSourcedStorage;"
        )

    assert await topic_size(kafka_url, events_topic) == produced_before
    status, body = await fleet.get(f"/v1/game_states/{games.alive}/events")
    assert [e["version"] for e in body["events"]] == [1, 2, 3, 4, 5, 6]
    assert (await games.storage.get(games.alive))["version"] == 6
    status, body = await fleet.get(f"/v1/game_states/{requests[2][0]}/events")
    assert status == 404
    refused = await fleet.metric(
        "eventfleet_requests_total", aggregate_type="game_states", outcome="rejected_read_only"
    )
    assert refused == 3


async def test_the_appender_dead_letters_a_storage_event_on_the_events_topic(games: Games) -> None:
    """A producer that bypasses the command path cannot append to a storage collection either."""
    fleet = games.fleet
    kafka_url = fleet.env["EVENTFLEET_KAFKA_URL"]
    doc_id = f"forged-{uuid.uuid4().hex[:6]}"
    forged = new_event("game_states", doc_id, "GameStateCreated", {"diff": {"gold": 9}})
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_url.removeprefix("kafka://"),
        enable_idempotence=False,
        acks="all",
        request_timeout_ms=10_000,
    )
    async with asyncio.timeout(20):
        await producer.start()
        try:
            await producer.send_and_wait(
                f"{fleet.prefix}events", encode(forged), key=aggregate_key("game_states", doc_id)
            )
        finally:
            await producer.stop()

    letters = await read_until(
        kafka_url,
        f"{fleet.prefix}events.dlq",
        expect=1,
        where=lambda r: decode(r.value).id == forged.id,
        settle_s=0.2,
    )
    [letter] = [r for r in letters if decode(r.value).id == forged.id]
    headers = dict(letter.headers)
    assert headers["dlq_reason"] == b"invalid"
    assert b"game_states is a storage domain" in headers["dlq_detail"]
    status, _ = await fleet.get(f"/v1/game_states/{doc_id}/events")
    assert status == 404


async def topic_size(kafka_url: str, topic: str) -> int:
    """How many records were ever produced to ``topic`` (the sum of its end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_url.removeprefix("kafka://"))
    async with asyncio.timeout(20):
        await consumer.start()
        try:
            size = await produced_to(consumer, topic)
        finally:
            await consumer.stop()
    assert size is not None, f"topic {topic} has no partitions"
    return size
