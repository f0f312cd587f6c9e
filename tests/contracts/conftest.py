"""Each port's adapters side by side: every contract test runs on the in-memory one and the real one.

Suites here: the event store's core and each of its capabilities (on ``backend``: every backend
of ``backends.py``, or those that claim the capability; a new backend joins there), SnapshotStore,
ViewStore and ViewStaging, Rejections (on ``stores``), Producer (on ``topics``), DocumentStore, ChangeFeed, Invalidations, Marker and
CommandMemory (on ``side``: ``test_marker.py``, ``test_marker_versions.py``), RuleStates,
AppendProgress, ProcessInstances (their own fixtures), SyncAppender (on ``s``, from
``synced``); the EventBus
contract is ``tests/bus/test_contract.py`` and the ActionLog's ``tests/console/test_action_log.py``.

The real ones use the embedded stack: MongoDB in a database of the test's own, Kafka on a
topic of the test's own. ``outage()`` gives the same backend unreachable: the memory adapters
taken down, MongoDB behind a TCP proxy that resets every connection, Kafka paused (SIGSTOP).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from tests.kafka_topics import create_topic, read_records
from workers.adapters.kafka import KafkaProducer, KafkaStream, plain
from workers.adapters.memory import (
    MemoryCommandMemory,
    MemoryDatabase,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
    MemorySnapshotStore,
    MemoryStream,
    MemoryViewStaging,
    MemoryViewStore,
)
from workers.adapters.mongo import (
    ACTIONS,
    EVENTS,
    REJECTIONS,
    SNAPSHOTS,
    Document,
    MongoEventStore,
    MongoRejections,
    MongoSnapshotStore,
    MongoViewStaging,
    MongoViewStore,
    connect,
    database,
)
from workers.adapters.redis import SCRIPTS, RedisBatcher, RedisCommandMemory, RedisMarker
from workers.adapters.redis.marker import RedisKeys
from workers.devtools.embedded import EmbeddedStack
from workers.metrics import create_metrics
from workers.ports import (
    CommandMemory,
    Marker,
    Producer,
    Record,
    Rejections,
    SnapshotStore,
    StoredEvents,
    ViewStaging,
    ViewStore,
)
from workers.runtime.adapters import Stream

from .backends import BACKENDS, OUTAGE_TIMEOUT_MS, Backend, opened, unreachable_mongo
from .synced import s  # noqa: F401  # SyncAppender's fixture, for its two suites

STORES = ("memory", "mongo")
PRODUCERS = ("memory", "kafka")
PARTITIONS = 3


@dataclass
class Stores:
    """One backend's stores; ``views(name)`` and ``staging(name)`` are on one database."""

    kind: str
    events: StoredEvents
    snapshots: SnapshotStore
    rejections: Rejections
    views: Callable[[str], ViewStore]
    staging: Callable[[str], ViewStaging]
    collections: Callable[[], Awaitable[list[str]]]
    outage: Callable[[], AbstractAsyncContextManager[Stores]]


def memory_stores() -> Stores:
    events, snapshots, db = MemoryEventStore(), MemorySnapshotStore(), MemoryDatabase()
    rejections = MemoryRejections()
    switches = (events, snapshots, db, rejections)

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
        rejections,
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
        MongoRejections(db),
        lambda name: MongoViewStore(db, name),
        lambda name: MongoViewStaging(db, name),
        partial(view_collections, db),
        asynccontextmanager(outage),
    )


async def view_collections(db: AsyncDatabase[Document]) -> list[str]:
    """The database's collections but the other stores'."""
    return sorted(set(await db.list_collection_names()) - {EVENTS, SNAPSHOTS, REJECTIONS, ACTIONS})


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


@pytest.fixture(params=list(BACKENDS))
async def backend(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Backend]:
    """Every event-store backend of ``tests/contracts/backends.py``, empty (the core's suite)."""
    async with opened(request.param, stack, unique_name) as opened_backend:
        yield opened_backend


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
    await create_topic(url, topic, partitions=PARTITIONS)
    async with started_producer(url, unique_name) as real:
        yield Topics("kafka", real, topic, lambda: read_records(url, topic), paused_kafka(stack))


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
            await create_topic(own.urls.kafka_url, "outage", partitions=PARTITIONS)
            async with started_producer(
                own.urls.kafka_url, "outage", timeout_ms=OUTAGE_TIMEOUT_MS
            ) as producer:
                kafka.pause()
                try:
                    yield producer
                finally:
                    kafka.resume()

    return outage


@dataclass
class Streamed:
    """A topic of the test's own on one stream adapter, and a producer writing to it."""

    stream: Stream
    producer: Producer
    topic: str


@pytest.fixture(params=["memory", "kafka"])
async def streamed(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Streamed]:
    """The topic on the in-memory stream, and on Kafka (the topic tail and window contracts)."""
    topic = f"{unique_name}.stream"
    if request.param == "memory":
        stream = MemoryStream(partitions={topic: PARTITIONS})
        yield Streamed(stream, stream.produced, topic)
        return
    url = stack.urls.kafka_url
    await create_topic(url, topic, partitions=PARTITIONS)
    async with started_producer(url, unique_name) as producer:
        yield Streamed(KafkaStream(plain(url), max_event_bytes=1 << 20), producer, topic)


# --- the marker and the command memory -------------------------------------------------


@dataclass
class Side:
    """A marker and a command memory on one backend."""

    marker: Marker
    memory: CommandMemory
    settle: object  # awaits whatever rides unawaited (the batcher's drain), or nothing
    plant: Callable[[str, str], Awaitable[None]]
    """Sets an aggregate's mark to a value as the backend stores it (a mark an older fleet,
    a late script or a lost write left)."""

    async def settled(self) -> None:
        if callable(self.settle):
            await self.settle()


@pytest.fixture(params=["memory", "redis"])
async def side(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Side]:
    if request.param == "memory":
        marker = MemoryMarker()

        async def plant_in_memory(key: str, value: str) -> None:
            marker.plant(key, value)

        yield Side(marker, MemoryCommandMemory(records=marker.records), None, plant_in_memory)
        return
    redis = Redis.from_url(stack.urls.redis_url)
    batcher = RedisBatcher(redis, scripts=SCRIPTS, timeout_ms=2000,
                           latency=create_metrics().marker_latency)  # fmt: skip
    prefix = f"{unique_name}:"

    async def plant_in_redis(key: str, value: str) -> None:
        await redis.set(RedisKeys(prefix).mark(key), value, px=60_000)

    side = Side(
        RedisMarker(batcher, prefix=prefix, ttl_s=60, claim_ttl_ms=5000),
        RedisCommandMemory(batcher, prefix=prefix, ttl_s=60, claim_ttl_ms=5000),
        batcher.drain,
        plant_in_redis,
    )
    yield side
    await batcher.drain()
    await redis.aclose()
