"""Delivery after the commit: events.stored through the outbox (or its relay), then the bus."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.kafka_topics import create_topic, read_events
from tests.storage.helpers import Document, raw_events
from topics.catalog import TopicNames
from workers.adapters.kafka import KafkaProducer, plain
from workers.adapters.mongo import MongoDocuments, MongoEventStore
from workers.bus import InProcessEventBus
from workers.metrics import create_metrics
from workers.roles.append.outbox import Outbox
from workers.storage import EventSourcedStorage


@pytest.fixture
async def topic(stack: Any, unique_name: str) -> str:
    name = TopicNames(prefix=f"{unique_name}.").stored
    await create_topic(stack.urls.kafka_url, name, partitions=2)
    return name


@pytest.fixture
async def producer(stack: Any, unique_name: str) -> AsyncIterator[KafkaProducer]:
    # plain(): not idempotent, as Tansu rejects InitProducerId
    started = KafkaProducer(plain(stack.urls.kafka_url), client_id=unique_name)
    await started.start()
    yield started
    await started.stop()


def _outbox(db: AsyncDatabase[Document], producer: KafkaProducer, topic: str) -> Outbox:
    return Outbox(
        MongoEventStore(db), producer, topic=topic, metrics=create_metrics(), mode="storage"
    )


async def _pending(db: AsyncDatabase[Document]) -> list[int]:
    return [e["version"] for e in await raw_events(db, "games", "g1") if e.get("pending_publish")]


async def test_changes_reach_events_stored_through_the_outbox(
    stack: Any, db: AsyncDatabase[Document], producer: KafkaProducer, topic: str
) -> None:
    games = EventSourcedStorage(MongoDocuments(db, "games"), outbox=_outbox(db, producer, topic))
    await games.find_one_and_upsert({"_id": "g1", "gold": 1}, client_id="game-server")
    await games.find_one_and_update("g1", lambda g: {**g, "gold": 2}, client_id="admin-panel")
    await games.delete_one("g1", client_id="admin-panel")

    stored = await games.get_missing_events("g1", after_version=0)
    assert await read_events(stack.urls.kafka_url, topic) == stored
    assert await _pending(db) == []


async def test_with_kafka_down_the_change_commits_and_the_relay_publishes_it_later(
    stack: Any,
    db: AsyncDatabase[Document],
    producer: KafkaProducer,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = KafkaProducer(
        plain("kafka://127.0.0.1:1", timeout_ms=200)
    )  # never started: every send raises StreamUnavailable, as with Kafka down
    games = EventSourcedStorage(MongoDocuments(db, "games"), outbox=_outbox(db, down, topic))
    with caplog.at_level(logging.WARNING, logger="workers.storage"):
        await games.find_one_and_upsert({"_id": "g1", "gold": 1}, client_id="game-server")
        await games.find_one_and_update("g1", lambda g: {**g, "gold": 2}, client_id="c")
    assert (await games.get("g1"))["version"] == 2
    assert await _pending(db) == [1, 2]
    assert "stays flagged for the outbox relay" in caplog.text

    relayed = await _outbox(db, producer, topic).relay_once(older_than_s=0)
    assert relayed == 2 and await _pending(db) == []
    assert await read_events(stack.urls.kafka_url, topic) == await games.get_missing_events(
        "g1", after_version=0
    )


async def test_a_failing_bus_does_not_fail_the_change(
    db: AsyncDatabase[Document], caplog: pytest.LogCaptureFixture
) -> None:
    bus = InProcessEventBus()
    await bus.close()  # publishing now raises BusClosed
    games = EventSourcedStorage(MongoDocuments(db, "games"), bus=bus)
    with caplog.at_level(logging.WARNING, logger="workers.storage"):
        doc = await games.find_one_and_upsert({"_id": "g1", "gold": 1}, client_id="c")
    assert doc["version"] == 1
    assert len(await games.get_missing_events("g1", after_version=0)) == 1
    assert "the bus did not take GamesCreated" in caplog.text
