"""A whole fleet's write path on memory adapters: command service, appender, snapshotter, auditor."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from snapshot_rules.domain import Domains
from topics.envelope import decode
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
    MemoryRuleStates,
    MemorySnapshotStore,
)
from workers.cqrs.repository import Repository
from workers.cqrs.sync import SyncCommands
from workers.metrics import Metrics, create_metrics
from workers.roles.appender import Appender, AppenderConfig
from workers.roles.audit import Auditor, AuditReport, AuditSources
from workers.roles.commands import CommandService
from workers.roles.deadletter import DeadLetters
from workers.roles.ledger import CommandLedger
from workers.roles.outbox import Outbox
from workers.roles.requests import CommandRequest
from workers.roles.snapshotter import Snapshotter
from workers.roles.state import StateLoader
from workers.runtime.answers import Answer, answer_of

EVENTS, STORED, REPLIES, DLQ = "p.events", "p.events.stored", "p.commands.replies", "p.events.dlq"


@dataclass
class Pipeline:
    """Requests in, stored events out: ``ask`` then ``flush`` moves the events topic to the store."""

    domains: Domains
    service: CommandService
    appender: Appender
    snapshotter: Snapshotter
    loader: StateLoader
    store: MemoryEventStore
    snapshots: MemorySnapshotStore
    producer: MemoryProducer
    progress: MemoryAppendProgress
    metrics: Metrics
    taken: int = field(default=0)
    handed: int = field(default=0)

    async def ask(self, aggregate: str, kind: str, data: Any = None, **kw: Any) -> Answer:
        aggregate_type, aggregate_id = aggregate.split(":", 1)
        request = CommandRequest(aggregate_type, aggregate_id, kind, data or {}, **kw)
        return answer_of(await self.service.handle(request))

    async def flush(self) -> None:
        """The appender takes what the command side produced; the snapshotter what was stored."""
        records = self.producer.records(EVENTS)[self.taken :]
        self.taken += len(records)
        if records:
            await self.appender.handle(records)
        self.progress.decide_all()
        stored = self.producer.records(STORED)[self.handed :]
        self.handed += len(stored)
        tasks = await self.snapshotter.handle([decode(r.value) for r in stored])
        await asyncio.gather(*tasks)

    def dead_letters(self) -> list[str]:
        return [dict(r.headers)["dlq_reason"].decode() for r in self.producer.records(DLQ)]

    async def audit(self) -> AuditReport:
        sources = AuditSources(events=self.store, snapshots=self.snapshots)
        return await Auditor(self.domains, sources).audit()


def pipeline(domains: Domains, *, metrics: Metrics | None = None) -> Pipeline:
    metrics = metrics or create_metrics()
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    producer = MemoryProducer(default_partitions=1)
    marker, rejections = MemoryMarker(), MemoryRejections()
    memory = MemoryCommandMemory(records=marker.records)
    progress = MemoryAppendProgress(producer, EVENTS)
    loader = StateLoader(store, snapshots, metrics)
    outbox = Outbox(store, producer, topic=STORED, metrics=metrics, mode="sync")
    sync = SyncCommands(repository=Repository(loader), outbox=outbox, metrics=metrics)
    service = CommandService(
        domains=domains,
        ledger=CommandLedger(marker, memory),
        store=store,
        rejections=rejections,
        producer=producer,
        progress=progress,
        events_topic=EVENTS,
        metrics=metrics,
        sync=sync,
        answer_wait_s=0.2,
    )
    appender = Appender(
        store=store,
        rejections=rejections,
        producer=producer,
        dead_letters=DeadLetters(producer, topic=DLQ, role="appender", metrics=metrics),
        domains=domains,
        metrics=metrics,
        config=AppenderConfig(STORED, REPLIES, max_event_bytes=1_000_000, wait_s=0.0),
        render=answer_of,
        marker=marker,
        memory=memory,
    )
    snapshotter = Snapshotter(
        loader=loader, domains=domains, metrics=metrics, concurrency=2,
        rule_states=MemoryRuleStates(),
    )  # fmt: skip
    return Pipeline(
        domains, service, appender, snapshotter, loader, store, snapshots, producer, progress,
        metrics,
    )  # fmt: skip
