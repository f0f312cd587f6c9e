"""The services of one fleet process: clients, stores, producer and the roles' logic, built once."""

from __future__ import annotations

import asyncio
import importlib
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, cast

from pymongo import AsyncMongoClient
from redis.asyncio import RedisCluster

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames
from topics.errors import ConfigError, EventfleetError
from workers.adapters.kafka import KafkaAppendProgress, KafkaConfig, KafkaProducer
from workers.adapters.mongo import (
    Document,
    MongoEventStore,
    MongoRejections,
    MongoSnapshotStore,
    connect,
    database,
    translated,
)
from workers.adapters.redis import (
    SCRIPTS,
    RedisBatcher,
    RedisCommandMemory,
    RedisMarker,
    connect_redis,
)
from workers.cqrs.repository import Repository
from workers.cqrs.sync import SyncCommands
from workers.metrics import Metrics, create_metrics
from workers.roles.appender import Appender, AppenderConfig
from workers.roles.bridge import Bridge
from workers.roles.commands import CommandService
from workers.roles.deadletter import DeadLetters
from workers.roles.forwarder import Forwarder
from workers.roles.ledger import CommandLedger
from workers.roles.outbox import Outbox
from workers.roles.outcomes import Outcomes
from workers.roles.snapshotter import Snapshotter
from workers.roles.state import StateLoader
from workers.runtime.answers import answer_of
from workers.runtime.buses import bridge_bus
from workers.runtime.connections import kafka_config
from workers.runtime.settings import Settings

log = logging.getLogger(__name__)

ROLES = ("commands", "appender", "snapshotter", "forwarder", "projection")
"""Every role; ``eventfleet dev`` and ``worker --role all`` run them all in one process."""
OPTIONAL_ROLES = ("bridge",)
"""Roles run only when named: the bridge republishes events.stored to a Redis or NATS bus."""


def load_domains(spec: str) -> Domains:
    """Import ``module:callable`` and call it; the result must be a Domains.

    Every mistake (a missing module, a Domain named instead of a function, a declaration
    error such as a typo in ``after=``) is one ConfigError naming the variable and the fix.
    """
    module_name, _, attribute = spec.partition(":")
    where = f"EVENTFLEET_DOMAINS={spec!r}"
    fix = "point it at a function returning Domains(...), e.g. 'myapp.domains:enabled'"
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{where} cannot be imported: {e}; {fix}.") from e
    except (ValueError, TypeError) as e:  # a Domain declared at import time is checked then
        raise ConfigError(f"{where}: {e}") from e
    if not callable(factory):
        raise ConfigError(f"{where} names a {type(factory).__name__}, not a function; {fix}.")
    try:
        domains = factory()
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from e
    if not isinstance(domains, Domains):
        raise ConfigError(
            f"{where} returned {type(domains).__name__}, not Domains; {fix}."
        )
    return domains


async def store_id(db: Any) -> str:
    """A random id kept in the store: marks of a store that was replaced are never read."""
    async with translated("reading the store id"):
        await db["meta"].update_one(
            {"_id": "store"}, {"$setOnInsert": {"uuid": uuid.uuid4().hex[:12]}}, upsert=True
        )
        doc = await db["meta"].find_one({"_id": "store"})
    return str(doc["uuid"]) if doc else "store"


class RoleNotRunning(EventfleetError):
    """A process asked for a role it was not built to run (a wiring bug)."""


@dataclass
class Runtime:
    """Everything the roles of one process need, bound to one event loop.

    Only what ``roles`` need is built: a read-only command (``roles=()``) starts no Kafka
    producer and connects to no Redis; a process running only the appender builds no
    command service. Asking for a part this process did not build raises RoleNotRunning.
    """

    settings: Settings
    domains: Domains
    metrics: Metrics
    names: TopicNames
    roles: frozenset[str]
    kafka: KafkaConfig
    mongo: AsyncMongoClient[Document]
    events: MongoEventStore
    snapshots: MongoSnapshotStore
    loader: StateLoader
    parts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        roles: Collection[str] = ROLES,
        domains: Domains | None = None,
        metrics: Metrics | None = None,
    ) -> Runtime:
        domains = domains or load_domains(settings.domains)
        metrics = metrics or create_metrics()
        kafka = kafka_config(settings)  # a bad secret or TLS file stops us before connecting
        mongo = connect(settings.mongo_url, timeout_ms=settings.mongo_timeout_ms)
        db = database(mongo, settings.mongo_database)
        events = MongoEventStore(db)
        snapshots = MongoSnapshotStore(db)
        loader = StateLoader(
            events,
            snapshots,
            metrics,
            tail_threshold=settings.snapshot_tail,
            query_interval_s=settings.snapshot_query_interval_ms / 1000,
        )
        runtime = cls(
            settings=settings,
            domains=domains,
            metrics=metrics,
            names=TopicNames(settings.topic_prefix),
            roles=frozenset(roles),
            kafka=kafka,
            mongo=mongo,
            events=events,
            snapshots=snapshots,
            loader=loader,
        )
        try:
            await events.ensure_indexes()
            if runtime.roles:
                await runtime._build_roles(db)
        except BaseException:
            await runtime.stop()
            raise
        return runtime

    async def _build_roles(self, db: Any) -> None:
        settings, metrics, names = self.settings, self.metrics, self.names
        producer = KafkaProducer(
            self.kafka,
            client_id=f"{settings.group_id}-producer",
            max_event_bytes=settings.max_event_bytes,
        )
        self.parts["producer"] = producer
        await producer.start()
        self.parts["dead_letters"] = {
            role: DeadLetters(producer, topic=names.dlq, role=role, metrics=metrics)
            for role in sorted(self.roles)
        }
        if "commands" in self.roles:
            await self._build_commands(db, producer)
        if "appender" in self.roles:
            self.parts["appender"] = Appender(
                store=self.events,
                rejections=MongoRejections(db),
                producer=producer,
                dead_letters=self.dead_letters["appender"],
                domains=self.domains,
                metrics=metrics,
                config=AppenderConfig(
                    stored_topic=names.stored,
                    replies_topic=names.command_replies,
                    max_event_bytes=settings.max_event_bytes,
                    wait_s=settings.append_wait_ms / 1000,
                ),
                render=answer_of,
                marker=await self._marker(db),
                memory=self.parts["memory"],
            )
        if "snapshotter" in self.roles:
            self.parts["snapshotter"] = Snapshotter(
                loader=self.loader,
                domains=self.domains,
                metrics=metrics,
                concurrency=settings.snapshot_concurrency,
                dead_letters=self.dead_letters["snapshotter"],
                stored_topic=names.stored,
            )
        if "bridge" in self.roles:
            self.parts["bridge"] = Bridge(
                bus=bridge_bus(settings),
                bus_name=settings.bridge_bus,
                domains=self.domains,
                metrics=metrics,
                dead_letters=self.dead_letters["bridge"],
            )
        if "forwarder" in self.roles:
            self.parts["forwarder"] = Forwarder(
                producer=producer,
                domains=self.domains,
                names=names,
                metrics=metrics,
                dead_letters=self.dead_letters["forwarder"],
            )

    async def marker_for_reads(self) -> RedisMarker:
        """The Redis marker, also in a process without the commands role (the auditor)."""
        return await self._marker(database(self.mongo, self.settings.mongo_database))

    async def _marker(self, db: Any) -> RedisMarker:
        """The Redis marker and command memory, one coalescing connection per process."""
        if "marker" in self.parts:
            return cast(RedisMarker, self.parts["marker"])
        settings = self.settings
        redis = connect_redis(settings.redis_url, timeout_ms=settings.redis_timeout_ms)
        batcher = RedisBatcher(
            redis,
            scripts=SCRIPTS,
            timeout_ms=settings.redis_timeout_ms,
            latency=self.metrics.marker_latency,
        )
        prefix = f"{settings.topic_prefix}{await store_id(db)}:"
        self.parts["redis"] = redis
        self.parts["batcher"] = batcher
        self.parts["memory"] = RedisCommandMemory(
            batcher, prefix=prefix, ttl_s=settings.command_ttl_s, claim_ttl_ms=settings.claim_ttl_ms
        )
        marker = RedisMarker(
            batcher,
            prefix=prefix,
            ttl_s=settings.marker_ttl_s,
            claim_ttl_ms=settings.claim_ttl_ms,
            cluster=isinstance(redis, RedisCluster),  # the filter key is in another slot
        )
        self.parts["marker"] = marker
        return marker

    async def _build_commands(self, db: Any, producer: KafkaProducer) -> None:
        settings, metrics = self.settings, self.metrics
        marker = await self._marker(db)
        outbox = Outbox(
            self.events, producer, topic=self.names.stored, metrics=metrics, mode="sync"
        )
        sync = SyncCommands(
            repository=Repository(self.loader),
            outbox=outbox,
            metrics=metrics,
            publish_budget_s=settings.sync_publish_budget_ms / 1000,
        )
        self.parts |= {"outbox": outbox, "sync": sync}
        rejections = MongoRejections(db)
        self.parts["outcomes"] = Outcomes(
            domains=self.domains,
            store=self.events,
            rejections=rejections,
            memory=self.parts["memory"],
        )
        progress = KafkaAppendProgress(
            self.kafka,
            topic=self.names.events,
            partitions=settings.partitions,
            group_prefix=f"{settings.group_id}-",
        )
        self.parts["progress"] = progress
        self.parts["commands"] = CommandService(
            domains=self.domains,
            ledger=CommandLedger(marker, self.parts["memory"]),
            store=self.events,
            rejections=rejections,
            producer=producer,
            progress=progress,
            events_topic=self.names.events,
            metrics=metrics,
            sync=sync,
            answer_wait_s=settings.kafka_timeout_ms / 1000 * 2,
            refusal_wait_s=settings.refusal_wait_ms / 1000,
        )

    def _part(self, name: str, role: str) -> Any:
        try:
            return self.parts[name]
        except KeyError:
            raise RoleNotRunning(
                f"this process was built for roles {sorted(self.roles) or 'none'}; "
                f"{name} belongs to the {role} role."
            ) from None

    @property
    def producer(self) -> KafkaProducer:
        return cast(KafkaProducer, self._part("producer", "any consuming"))

    @property
    def dead_letters(self) -> dict[str, DeadLetters]:
        return cast(dict[str, DeadLetters], self._part("dead_letters", "any consuming"))

    @property
    def marker(self) -> RedisMarker:
        return cast(RedisMarker, self._part("marker", "commands"))

    @property
    def outbox(self) -> Outbox:
        return cast(Outbox, self._part("outbox", "commands"))

    @property
    def sync(self) -> SyncCommands:
        return cast(SyncCommands, self._part("sync", "commands"))

    @property
    def commands(self) -> CommandService:
        return cast(CommandService, self._part("commands", "commands"))

    @property
    def outcomes(self) -> Outcomes:
        return cast(Outcomes, self._part("outcomes", "commands"))

    @property
    def appender(self) -> Appender:
        return cast(Appender, self._part("appender", "appender"))

    @property
    def snapshotter(self) -> Snapshotter:
        return cast(Snapshotter, self._part("snapshotter", "snapshotter"))

    @property
    def bridge(self) -> Bridge:
        return cast(Bridge, self._part("bridge", "bridge"))

    @property
    def forwarder(self) -> Forwarder:
        return cast(Forwarder, self._part("forwarder", "forwarder"))

    async def stop(self) -> None:
        """Drain background work, then close every client this process opened."""
        if "snapshotter" in self.parts:
            await self.snapshotter.drain()
        await self.loader.drain()
        if "sync" in self.parts:
            await self.sync.drain()
        if "batcher" in self.parts:
            await self.parts["batcher"].drain()
        if "bridge" in self.parts:
            await self.bridge.bus.close()
        if "progress" in self.parts:
            await self.parts["progress"].stop()
        if "producer" in self.parts:
            await self.producer.stop()
        if "redis" in self.parts:
            try:
                await asyncio.wait_for(self.parts["redis"].aclose(), 2)
            except (TimeoutError, OSError) as e:
                log.warning("redis close: %r", e)
        await self.mongo.close()

    async def ping_store(self) -> None:
        """One MongoDB round trip (the health monitor bounds it with the store's timeout)."""
        async with translated("pinging"):
            await self.mongo.admin.command("ping")
