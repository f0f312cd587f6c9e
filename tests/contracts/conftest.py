"""Each port's adapters side by side: every contract test runs on the in-memory one and the real one.

The real ones use the embedded stack: MongoDB in a database of the test's own, Kafka on a
topic of the test's own. ``outage()`` gives the same backend unreachable: the memory adapters
taken down, MongoDB behind a TCP proxy that resets every connection, Kafka paused (SIGSTOP).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol
from urllib.parse import urlsplit

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo.asynchronous.database import AsyncDatabase

from tests.faults import TcpProxy
from workers.adapters.kafka import KafkaProducer, plain
from workers.adapters.memory import (
    MemoryDatabase,
    MemoryEventStore,
    MemoryProducer,
    MemorySnapshotStore,
    MemoryViewStaging,
    MemoryViewStore,
)
from workers.adapters.mongo import (
    EVENTS,
    SNAPSHOTS,
    Document,
    MongoEventStore,
    MongoSnapshotStore,
    MongoViewStaging,
    MongoViewStore,
    connect,
    database,
)
from workers.devtools.embedded import EmbeddedStack
from workers.ports import (
    EventStore,
    PendingEvents,
    Producer,
    Record,
    SnapshotStore,
    ViewStaging,
    ViewStore,
)

STORES = ("memory", "mongo")
PRODUCERS = ("memory", "kafka")
PARTITIONS = 3
OUTAGE_TIMEOUT_MS = 300
"""How long the real adapters wait for a dropped MongoDB or a paused Kafka before giving up."""


class Events(EventStore, PendingEvents, Protocol):
    """Both ports the event store adapters implement."""


@dataclass
class Stores:
    """One backend's stores; ``views(name)`` and ``staging(name)`` are on one database."""

    kind: str
    events: Events
    snapshots: SnapshotStore
    views: Callable[[str], ViewStore]
    staging: Callable[[str], ViewStaging]
    collections: Callable[[], Awaitable[list[str]]]
    outage: Callable[[], AbstractAsyncContextManager[Stores]]


def memory_stores() -> Stores:
    events, snapshots, db = MemoryEventStore(), MemorySnapshotStore(), MemoryDatabase()
    switches = (events, snapshots, db)

    @asynccontextmanager
    async def outage() -> AsyncIterator[Stores]:
        for switch in switches:
            switch.down()
        try:
            yield built
        finally:
            for switch in switches:
                switch.up()

    async def collections() -> list[str]:
        return db.collection_names()

    built = Stores(
        "memory",
        events,
        snapshots,
        lambda name: MemoryViewStore(db, name),
        lambda name: MemoryViewStaging(db, name),
        collections,
        outage,
    )
    return built


def mongo_stores(
    db: AsyncDatabase[Document], outage: Callable[[], AsyncIterator[Stores]]
) -> Stores:
    return Stores(
        "mongo",
        MongoEventStore(db),
        MongoSnapshotStore(db),
        lambda name: MongoViewStore(db, name),
        lambda name: MongoViewStaging(db, name),
        partial(view_collections, db),
        asynccontextmanager(outage),
    )


async def view_collections(db: AsyncDatabase[Document]) -> list[str]:
    """The database's collections but the event and snapshot stores'."""
    return sorted(set(await db.list_collection_names()) - {EVENTS, SNAPSHOTS})


@pytest.fixture(params=STORES)
async def stores(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield memory_stores()
        return
    url = stack.urls.mongo_url

    async def outage() -> AsyncIterator[Stores]:
        async with unreachable_mongo(url, unique_name) as db:
            yield mongo_stores(db, outage)

    client = connect(url, timeout_ms=5000)
    try:
        built = mongo_stores(database(client, unique_name), outage)
        assert isinstance(built.events, MongoEventStore)
        await built.events.ensure_indexes()
        yield built
    finally:
        await client.drop_database(unique_name)
        await client.close()


@asynccontextmanager
async def unreachable_mongo(url: str, name: str) -> AsyncIterator[AsyncDatabase[Document]]:
    """Database ``name`` through a proxy that resets every connection, with short timeouts."""
    target = urlsplit(url)
    assert target.hostname is not None and target.port is not None
    async with TcpProxy(target.hostname, target.port) as proxy:
        client = connect(url.replace(target.netloc, proxy.address), timeout_ms=OUTAGE_TIMEOUT_MS)
        try:
            proxy.drop()
            yield database(client, name)
        finally:
            await client.close()


@dataclass
class Topics:
    """One backend's producer, a topic of ``PARTITIONS`` partitions, and what reached it."""

    kind: str
    producer: Producer
    topic: str
    produced: Callable[[], Awaitable[list[Record]]]
    """Every record on the topic, by partition then offset."""
    outage: Callable[[], AbstractAsyncContextManager[Producer]]


@pytest.fixture(params=PRODUCERS)
async def topics(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Topics]:
    topic = f"{unique_name}.contract"
    if request.param == "memory":
        producer = MemoryProducer(partitions={topic: PARTITIONS})

        async def produced() -> list[Record]:
            return sorted(producer.records(topic), key=lambda r: (r.partition, r.offset))

        @asynccontextmanager
        async def outage() -> AsyncIterator[Producer]:
            producer.down()
            try:
                yield producer
            finally:
                producer.up()

        yield Topics("memory", producer, topic, produced, outage)
        return
    url = stack.urls.kafka_url
    await create_topic(url, topic)
    async with started_producer(url, unique_name) as real:
        yield Topics("kafka", real, topic, lambda: read_topic(url, topic), paused_kafka(stack))


@asynccontextmanager
async def started_producer(
    kafka_url: str, name: str, *, timeout_ms: int = 5000
) -> AsyncIterator[KafkaProducer]:
    # plain(): not idempotent, as the embedded broker rejects InitProducerId
    producer = KafkaProducer(plain(kafka_url, timeout_ms=timeout_ms), client_id=name)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def paused_kafka(stack: EmbeddedStack) -> Callable[[], AbstractAsyncContextManager[Producer]]:
    """A producer started on a Kafka of its own, which is then paused (it cannot answer)."""

    @asynccontextmanager
    async def outage() -> AsyncIterator[Producer]:
        own = EmbeddedStack(mongo_url=stack.urls.mongo_url, redis_url=stack.urls.redis_url)
        async with own:
            kafka = own.process("kafka")
            await create_topic(own.urls.kafka_url, "outage")
            async with started_producer(
                own.urls.kafka_url, "outage", timeout_ms=OUTAGE_TIMEOUT_MS
            ) as producer:
                kafka.pause()
                try:
                    yield producer
                finally:
                    kafka.resume()

    return outage


def _bootstrap(kafka_url: str) -> str:
    return kafka_url.removeprefix("kafka://")


async def create_topic(kafka_url: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(kafka_url), request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        new = NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)
        await asyncio.wait_for(admin.create_topics([new]), 10)
    finally:
        await asyncio.wait_for(admin.close(), 10)


async def read_topic(kafka_url: str, topic: str, *, timeout_s: float = 10.0) -> list[Record]:
    """Every record of ``topic`` up to its current end (no consumer group: no join wait)."""
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
        found: list[Record] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any([await consumer.position(tp) < end[tp] for tp in partitions]):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{topic}: could not read up to {end} within {timeout_s} s")
            for records in (await consumer.getmany(*partitions, timeout_ms=100)).values():
                found.extend(
                    Record(r.topic, r.partition, r.offset, r.key, r.value or b"", tuple(r.headers))
                    for r in records
                )
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        await asyncio.wait_for(consumer.stop(), timeout_s)
