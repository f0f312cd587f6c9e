"""What a fleet process connects to, as typed ports: the real services, or their in-memory twins.

``Adapters`` groups them by technology: the stores (MongoDB), the stream (Kafka), the marks
(Redis) and the bridge's bus (Redis Streams or NATS). ``real_adapters`` builds them from the
settings, ``memory_adapters`` in memory; ``Runtime.start`` takes either, and builds from it only
what the roles of its process need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from workers.adapters.kafka import KafkaConfig, KafkaStream
from workers.adapters.memory import MemoryLiveFeed, MemoryMarks, MemoryStores, MemoryStream
from workers.adapters.mongo import MongoStores
from workers.adapters.redis import MarkTtls, RedisLiveFeed, RedisMarks
from workers.bus import InProcessEventBus
from workers.metrics import Metrics
from workers.ports import (
    ActionLog,
    AppendProgress,
    CommandMemory,
    EventBus,
    EventStore,
    KeyStore,
    LiveFeed,
    LogProbe,
    Marker,
    MarkPeek,
    ParkedEvents,
    Positions,
    ProcessInstances,
    Producer,
    Record,
    Rejections,
    SnapshotLadder,
    SnapshotStore,
    TicketLimits,
    TicketStore,
    TopicPages,
    TopicTail,
    TopicWindow,
    ViewStaging,
    ViewStore,
    WriteBudgets,
    WrittenLog,
)
from workers.roles.ops.archive import ArchiveEvents
from workers.runtime.buses import bridge_bus
from workers.runtime.settings import Settings


class Stores(Protocol):
    """The fleet's database: every store port, and the connection they share.

    ``events`` need only be the core (``EventStore``); ``archive`` and ``ladder`` may be None.
    ``docs/development.md`` ("A new backend") says what a new one implements, and how
    ``tests/contracts`` proves it.
    """

    @property
    def events(self) -> EventStore:
        """The hot event store: the core every backend implements, and whatever optional
        capabilities it offers (``workers.ports.capabilities``, discovered by ``isinstance``)."""
        ...

    @property
    def archive(self) -> ArchiveEvents | None:
        """Where events past a domain's retention are kept (same documents, same ids); None: the
        backend keeps no archive (nothing moves, every read is the hot store's)."""
        ...

    @property
    def snapshots(self) -> SnapshotStore: ...

    @property
    def ladder(self) -> SnapshotLadder | None:
        """The snapshots kept below the newest; None: the backend keeps none (a state at a past
        version or moment folds from the newest snapshot below it, or from version 1)."""
        ...

    @property
    def rejections(self) -> Rejections: ...

    @property
    def actions(self) -> ActionLog: ...

    @property
    def parked(self) -> ParkedEvents:
        """Aggregates the appender parked, with their queues."""
        ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def processes(self) -> ProcessInstances:
        """The instances of the process managers, with their outboxes and deadlines."""
        ...

    def views(self, collection: str) -> ViewStore: ...

    def staging(self, collection: str) -> ViewStaging: ...

    async def open(self) -> None: ...

    async def ping(self) -> None: ...

    async def store_id(self) -> str: ...

    async def position_key(self) -> bytes:
        """A random key kept in the store, made once: what binds the global read's positions
        to this fleet (``workers.roles.read.position``)."""
        ...

    async def close(self) -> None: ...


class ProducerClient(Producer, Protocol):
    """A producer with the lifecycle of the process that owns it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ping(self) -> None: ...

    async def settled(self) -> None:
        """Returns once no record handed over can still land (each acknowledged or failed);
        StreamUnavailable if that does not happen in time."""
        ...


class Progress(AppendProgress, Protocol):
    """The appender's progress, with the lifecycle of the process that asks it."""

    async def stop(self) -> None: ...


class PositionsClient(Positions, Protocol):
    """Positions, with the lifecycle of the process that asks them."""

    async def stop(self) -> None: ...


class WrittenLogClient(WrittenLog, Protocol):
    """The written log, with the lifecycle of the process that reads it."""

    async def stop(self) -> None: ...


class PagesClient(TopicPages, Protocol):
    """Pages of a topic, with the lifecycle of the process that reads them."""

    async def stop(self) -> None: ...


class Stream(TopicTail, Protocol):
    """The event stream outside Faust: producers, the appender's progress, and whole-topic
    reads (audits, dead letters)."""

    def producer(self, *, client_id: str) -> ProducerClient: ...

    def progress(self, *, topic: str, partitions: int, group_prefix: str) -> Progress:
        """How far the appender (a group named ``<group_prefix>…``) has decided ``topic``."""
        ...

    def positions(self, *, fetch_max_wait_ms: int = 50) -> PositionsClient:
        """Where consumer groups stand and which offsets hold records (for the agents)."""
        ...

    def written(self) -> WrittenLogClient:
        """What topics already hold, read back by time (the forwarder's copies)."""
        ...

    def pages(self, *, readers: int = 4) -> PagesClient:
        """Bounded reads of a topic from positions (the global read), on at most ``readers``
        readers at once."""
        ...

    def probe(self) -> LogProbe:
        """The log's word on a produce that was never answered (the outcome query)."""
        ...

    async def read(self, topic: str, *, timeout_s: float = 30.0) -> list[Record]: ...

    async def read_window(
        self,
        topic: str,
        *,
        limit: int,
        partition: int | None = None,
        before_offset: int | None = None,
        timeout_s: float = 10.0,
    ) -> list[TopicWindow]:
        """The newest ``limit`` records before ``before_offset`` (None: the end) of each
        partition (or only ``partition``), reading only that window; one ``TopicWindow`` per
        partition the topic has (none for a partition or topic it has not)."""
        ...


class Markers(Marker, MarkPeek, Protocol):
    """The marker, which the auditor also reads."""


class Marks(Protocol):
    """The marker, the command memory, the write budgets and the tickets on one connection."""

    @property
    def marker(self) -> Markers: ...

    @property
    def memory(self) -> CommandMemory: ...

    @property
    def budgets(self) -> WriteBudgets: ...

    @property
    def tickets(self) -> TicketStore: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Adapters:
    """One process's dependencies: the stores (open from the start), how to make the rest.

    ``marks(prefix)`` connects the marker under a key prefix (the runtime adds the store id);
    ``bus()`` is the bridge role's bus; ``live(prefix)`` the live feed (Redis Pub/Sub) that
    processes storing events announce on and processes serving subscribers listen to. Each is
    called only by a process that needs it.
    """

    stores: Stores
    stream: Stream
    marks: Callable[[str], Marks]
    bus: Callable[[], EventBus]
    live: Callable[[str], LiveFeed]


def real_adapters(
    settings: Settings, metrics: Metrics, *, kafka: KafkaConfig, master_key: bytes | None
) -> Adapters:
    """MongoDB, Kafka, Redis and the configured bus, as the settings name them, with the Kafka
    config and the master key the process made from its secrets at start."""

    def marks(prefix: str) -> RedisMarks:
        return RedisMarks(
            settings.redis_url,
            prefix=prefix,
            timeout_ms=settings.redis_timeout_ms,
            ttls=MarkTtls(settings.marker_ttl_s, settings.command_ttl_s, settings.claim_ttl_ms),
            tickets=TicketLimits(settings.tickets_per_principal, settings.tickets_max_held),
            latency=metrics.marker_latency,
        )

    return Adapters(
        stores=MongoStores(
            settings.mongo_url,
            settings.mongo_database,
            timeout_ms=settings.mongo_timeout_ms,
            master_key=master_key,
        ),
        stream=KafkaStream(kafka, max_event_bytes=settings.max_event_bytes),
        marks=marks,
        bus=lambda: bridge_bus(settings),
        live=lambda prefix: RedisLiveFeed(
            settings.redis_url, prefix=prefix, timeout_ms=settings.redis_timeout_ms
        ),
    )


@dataclass(frozen=True, slots=True)
class MemoryAdapters:
    """``memory_adapters()``: the adapters, and their in-memory classes for a test's switches."""

    stores: MemoryStores
    stream: MemoryStream
    marks: MemoryMarks
    bus: InProcessEventBus
    live: MemoryLiveFeed

    def adapters(self) -> Adapters:
        return Adapters(
            self.stores,
            self.stream,
            lambda prefix: self.marks,
            lambda: self.bus,
            lambda prefix: self.live,
        )


def memory_adapters(*, partitions: Mapping[str, int] | None = None) -> MemoryAdapters:
    """Every dependency in memory: a whole process's roles with no server (tests)."""
    return MemoryAdapters(
        MemoryStores(),
        MemoryStream(partitions=partitions),
        MemoryMarks(),
        InProcessEventBus(),
        MemoryLiveFeed(),
    )
