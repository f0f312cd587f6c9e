"""The services of one fleet process: clients, stores, producer and the roles' logic, built once."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames
from topics.errors import ConfigError, Unavailable
from workers.adapters.kafka import KafkaProducer
from workers.adapters.mongo import (
    Document,
    MongoEventStore,
    MongoSnapshotStore,
    connect,
    database,
    translated,
)
from workers.adapters.redis import RedisMarker
from workers.cqrs.repository import Repository
from workers.cqrs.sync import SyncCommands
from workers.metrics import Metrics, create_metrics
from workers.roles.appender import Appender
from workers.roles.commands import CommandService
from workers.roles.deadletter import DeadLetters
from workers.roles.forwarder import Forwarder
from workers.roles.outbox import Outbox
from workers.roles.snapshotter import Snapshotter
from workers.roles.state import StateLoader
from workers.runtime.settings import Settings

log = logging.getLogger(__name__)

ROLES = ("commands", "appender", "snapshotter", "forwarder", "projection")
"""Every role; ``eventfleet dev`` and ``worker --role all`` run them all in one process."""


def load_domains(spec: str) -> Domains:
    """Import ``module:callable`` and call it; the result must be a Domains."""
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"EVENTFLEET_DOMAINS={spec!r} cannot be imported: {e}") from e
    domains = factory()
    if not isinstance(domains, Domains):
        raise ConfigError(
            f"EVENTFLEET_DOMAINS={spec!r} returned {type(domains).__name__}, not Domains"
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


@dataclass
class Runtime:
    """Everything a role needs, bound to one event loop."""

    settings: Settings
    domains: Domains
    metrics: Metrics
    names: TopicNames
    mongo: AsyncMongoClient[Document]
    redis: Redis
    producer: KafkaProducer
    events: MongoEventStore
    snapshots: MongoSnapshotStore
    loader: StateLoader
    marker: RedisMarker
    outbox: Outbox
    sync: SyncCommands
    commands: CommandService
    appender: Appender
    snapshotter: Snapshotter
    forwarder: Forwarder
    dead_letters: dict[str, DeadLetters]
    _health: dict[str, tuple[float, bool]] = field(default_factory=dict)

    @classmethod
    async def start(
        cls, settings: Settings, *, domains: Domains | None = None, metrics: Metrics | None = None
    ) -> Runtime:
        domains = domains or load_domains(settings.domains)
        metrics = metrics or create_metrics()
        names = TopicNames(settings.topic_prefix)
        mongo = connect(settings.mongo_url, timeout_ms=settings.mongo_timeout_ms)
        db = database(mongo, settings.mongo_database)
        events = MongoEventStore(db)
        snapshots = MongoSnapshotStore(db)
        await events.ensure_indexes()
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_ms / 1000,
            socket_connect_timeout=settings.redis_timeout_ms / 1000,
        )
        producer = KafkaProducer(settings, client_id=f"{settings.group_id}-producer")
        await producer.start()
        loader = StateLoader(events, snapshots, metrics, tail_threshold=settings.snapshot_tail)
        marker = RedisMarker(
            redis,
            metrics,
            prefix=f"{settings.topic_prefix}{await store_id(db)}:",
            ttl_s=settings.marker_ttl_s,
            command_ttl_s=settings.command_ttl_s,
            timeout_ms=settings.redis_timeout_ms,
        )
        outbox = Outbox(
            events, producer, topic=names.stored, metrics=metrics, mode="sync"
        )
        sync = SyncCommands(repository=Repository(loader), outbox=outbox, metrics=metrics)
        dead_letters = {
            role: DeadLetters(producer, topic=names.dlq, role=role, metrics=metrics)
            for role in ("appender", "snapshotter", "forwarder", "commands", "projection")
        }
        return cls(
            settings=settings,
            domains=domains,
            metrics=metrics,
            names=names,
            mongo=mongo,
            redis=redis,
            producer=producer,
            events=events,
            snapshots=snapshots,
            loader=loader,
            marker=marker,
            outbox=outbox,
            sync=sync,
            commands=CommandService(
                domains=domains,
                marker=marker,
                memory=marker,
                store=events,
                producer=producer,
                events_topic=names.events,
                metrics=metrics,
                sync=sync,
                answer_wait_s=settings.kafka_timeout_ms / 1000 * 2,
            ),
            appender=Appender(
                store=events,
                producer=producer,
                dead_letters=dead_letters["appender"],
                domains=domains,
                stored_topic=names.stored,
                metrics=metrics,
                max_event_bytes=settings.max_event_bytes,
            ),
            snapshotter=Snapshotter(
                loader=loader,
                domains=domains,
                metrics=metrics,
                concurrency=settings.snapshot_concurrency,
            ),
            forwarder=Forwarder(producer=producer, domains=domains, names=names, metrics=metrics),
            dead_letters=dead_letters,
        )

    async def stop(self) -> None:
        await self.snapshotter.drain()
        await self.loader.drain()
        await self.sync.drain()
        await self.producer.stop()
        try:
            await asyncio.wait_for(self.redis.aclose(), 2)
        except (TimeoutError, OSError) as e:
            log.warning("redis close: %r", e)
        await self.mongo.close()

    async def healthy(self, service: str) -> bool:
        """Ping a dependency, at most once a second per service (readiness probes are frequent)."""
        checked_at, ok = self._health.get(service, (0.0, False))
        if time.monotonic() - checked_at < 1.0:
            return ok
        ok = await self._ping(service)
        self._health[service] = (time.monotonic(), ok)
        return ok

    async def _ping(self, service: str) -> bool:
        try:
            if service == "store":
                await asyncio.wait_for(
                    self.mongo.admin.command("ping"), self.settings.mongo_timeout_ms / 1000
                )
                return True
            if service == "marker":
                return await self.marker.ping()
        except (Unavailable, TimeoutError, Exception) as e:
            log.info("%s not reachable: %r", service, e)
            return False
        return True
