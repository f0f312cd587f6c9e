"""Real wiring of SyncCommands for tests: MongoDB store, outbox and Kafka producer, unique names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from topics.catalog import TopicNames
from topics.envelope import Event, Metadata, decode
from workers.adapters.kafka import KafkaProducer, plain
from workers.adapters.mongo import PENDING, MongoEventStore, MongoSnapshotStore, connect, database
from workers.cqrs import Repository
from workers.cqrs.sync import SyncCommands
from workers.examples.domains.account import ACCOUNT
from workers.metrics import Metrics, create_metrics
from workers.ports import SyncResult
from workers.roles.outbox import Outbox
from workers.roles.state import StateLoader

PARTITIONS = 2


@dataclass
class SyncWiring:
    """One SyncCommands and the real pieces behind it."""

    sync: SyncCommands
    repository: Repository
    loader: StateLoader
    store: MongoEventStore
    outbox: Outbox
    producer: KafkaProducer
    metrics: Metrics
    topic: str
    kafka_url: str

    async def append(self, aggregate_id: str, kind: str, **data: Any) -> SyncResult:
        return await self.sync.append(ACCOUNT, aggregate_id, kind, data, Metadata(client_id="t"))

    async def stored(self, aggregate_id: str) -> list[Event]:
        return await self.store.read(("account", aggregate_id))

    async def pending(self) -> list[str]:
        cursor = self.store.collection.find({PENDING: True}, projection={"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def published(self) -> list[Event]:
        return await read_topic(self.kafka_url, self.topic)


@asynccontextmanager
async def sync_wiring(
    *,
    kafka_url: str,
    mongo_url: str,
    name: str,
    kafka_timeout_ms: int = 5000,
    mongo_timeout_ms: int = 5000,
    max_attempts: int = 5,
) -> AsyncIterator[SyncWiring]:
    """Everything under ``name``: database ``name``, topic ``name.events.stored``."""
    topic = TopicNames(prefix=f"{name}.").stored
    await create_topic(kafka_url, topic)
    client = connect(mongo_url, timeout_ms=mongo_timeout_ms)
    # plain(): not idempotent, as Tansu rejects InitProducerId
    producer = KafkaProducer(plain(kafka_url, timeout_ms=kafka_timeout_ms), client_id=name)
    try:
        db = database(client, name)
        store = MongoEventStore(db)
        await store.ensure_indexes()
        metrics = create_metrics()
        loader = StateLoader(store, MongoSnapshotStore(db), metrics, tail_threshold=5)
        await producer.start()
        outbox = Outbox(store, producer, topic=topic, metrics=metrics, mode="sync")
        repository = Repository(loader)
        sync = SyncCommands(
            repository=repository, outbox=outbox, metrics=metrics, max_attempts=max_attempts
        )
        yield SyncWiring(
            sync, repository, loader, store, outbox, producer, metrics, topic, kafka_url
        )
        await sync.drain()
        await loader.drain()
    finally:
        await producer.stop()
        await client.close()


def _bootstrap(kafka_url: str) -> str:
    return kafka_url.removeprefix("kafka://")


async def create_topic(kafka_url: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(kafka_url), request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        await asyncio.wait_for(
            admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]),
            10,
        )
    finally:
        await asyncio.wait_for(admin.close(), 10)


async def read_topic(kafka_url: str, topic: str, *, timeout_s: float = 10.0) -> list[Event]:
    """Every record on ``topic`` up to its current end, decoded (no consumer group: no join wait)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=_bootstrap(kafka_url),
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        request_timeout_ms=5000,
    )
    await asyncio.wait_for(consumer.start(), timeout_s)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await asyncio.wait_for(consumer.seek_to_beginning(*partitions), timeout_s)
        end = await asyncio.wait_for(consumer.end_offsets(partitions), timeout_s)
        events: list[Event] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await _reached(consumer, end):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{topic}: could not read up to {end} within {timeout_s} s")
            batches = await consumer.getmany(*partitions, timeout_ms=100)
            events.extend(
                decode(record.value) for records in batches.values() for record in records
            )
        return events
    finally:
        await asyncio.wait_for(consumer.stop(), timeout_s)


async def _reached(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True
