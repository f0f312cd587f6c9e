"""Sync mode as the fleet wires it: a commands-role Runtime on the real stack, under unique names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from snapshot_rules.domain import Domains
from tests.kafka_topics import create_topic, read_events
from tests.keys import TEST_MASTER_KEY_VARIABLE
from topics.envelope import Event, Metadata, utc_now
from topics.errors import Unavailable
from workers.cqrs import Repository
from workers.cqrs.sync import SyncCommands
from workers.examples.domains.account import ACCOUNT
from workers.metrics import Metrics
from workers.ports import StoredEvents, SyncResult
from workers.roles.append.outbox import Outbox
from workers.roles.state import StateLoader
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings

PARTITIONS = 2


@dataclass
class SyncWiring:
    """The runtime's SyncCommands and the real pieces behind it."""

    runtime: Runtime
    sync: SyncCommands
    repository: Repository
    loader: StateLoader
    store: StoredEvents
    outbox: Outbox
    metrics: Metrics
    topic: str
    kafka_url: str

    async def append(self, aggregate_id: str, kind: str, **data: Any) -> SyncResult:
        return await self.sync.append(ACCOUNT, aggregate_id, kind, data, Metadata(client_id="t"))

    async def stored(self, aggregate_id: str) -> list[Event]:
        return await self.store.select(("account", aggregate_id))

    async def pending(self) -> list[str]:
        """Ids of the stored events still flagged for publishing."""
        later = utc_now() + timedelta(days=1)
        return [event.id for event in await self.store.pending(older_than=later, limit=10_000)]

    async def published(self) -> list[Event]:
        return await read_events(self.kafka_url, self.topic)

    async def relayed(self) -> bool:
        """One relay round as the relay loop runs it; True once nothing waits to be published."""
        try:
            await self.outbox.relay_once(older_than_s=0)
        except Unavailable:
            return False  # Kafka is slow or still coming back; the loop tries again
        return not await self.pending()


@asynccontextmanager
async def sync_wiring(
    *,
    kafka_url: str,
    mongo_url: str,
    redis_url: str,
    name: str,
    kafka_timeout_ms: int = 5000,
) -> AsyncIterator[SyncWiring]:
    """Everything under ``name``: database ``name``, topic ``name.events.stored``; the store's
    timeout is the fleet's default (``EVENTFLEET_MONGO_TIMEOUT_MS``)."""
    settings = Settings(
        kafka_url=kafka_url,
        mongo_url=mongo_url,
        redis_url=redis_url,
        mongo_database=name,
        topic_prefix=f"{name}.",
        group_id=name,
        kafka_idempotence=False,  # Tansu rejects InitProducerId
        kafka_timeout_ms=kafka_timeout_ms,
        snapshot_tail=5,
        master_key_env=TEST_MASTER_KEY_VARIABLE,  # the account's holder is sealed
    )
    runtime = await Runtime.start(settings, roles=("commands",), domains=Domains([ACCOUNT]))
    try:
        topic = runtime.names.stored
        await create_topic(kafka_url, topic, partitions=PARTITIONS)
        yield SyncWiring(
            runtime,
            runtime.sync,
            Repository(runtime.loader),
            runtime.loader,
            runtime.events,
            runtime.outbox,
            runtime.metrics,
            topic,
            kafka_url,
        )
    finally:
        await runtime.stop()
