"""A whole fleet's write path on memory adapters, wired by the runtime: command service, appender,
snapshotter, auditor."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from snapshot_rules.domain import Domains
from topics.envelope import decode
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryEventStore,
    MemoryProducer,
    MemoryRuleStates,
    MemorySnapshotStore,
)
from workers.metrics import Metrics, create_metrics
from workers.roles.append.appender import Appender
from workers.roles.command.commands import CommandDispatcher
from workers.roles.command.requests import CommandRequest
from workers.roles.ops.audit import Auditor, AuditReport, AuditSources
from workers.roles.personal import Shredder
from workers.roles.read.snapshotter import Snapshotter
from workers.roles.state import StateLoader
from workers.runtime.adapters import Markers, memory_adapters
from workers.runtime.answers import Answer, answer_of
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings

EVENTS, STORED, REPLIES, DLQ = "p.events", "p.events.stored", "p.commands.replies", "p.events.dlq"


@dataclass
class Pipeline:
    """Requests in, stored events out: ``ask`` then ``flush`` moves the events topic to the store."""

    domains: Domains
    service: CommandDispatcher
    appender: Appender
    snapshotter: Snapshotter
    loader: StateLoader
    store: MemoryEventStore
    snapshots: MemorySnapshotStore
    producer: MemoryProducer
    progress: MemoryAppendProgress
    metrics: Metrics
    shredder: Shredder
    marker: Markers
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


SETTINGS = Settings(
    topic_prefix="p.", kafka_timeout_ms=100, append_wait_ms=0, snapshot_concurrency=2
)
"""Topics ``p.*``; a command waits 0.2 s for Kafka's answer, the appender never for a predecessor."""


async def pipeline(
    domains: Domains, *, metrics: Metrics | None = None, settings: Settings = SETTINGS
) -> Pipeline:
    """The roles of a fleet's write path, built by the runtime on the memory adapters."""
    memory = memory_adapters()
    runtime = await Runtime.start(
        settings,
        roles=("commands", "appender", "snapshotter"),
        domains=domains,
        metrics=metrics or create_metrics(),
        adapters=memory.adapters(),
    )
    runtime.snapshotter.attach(MemoryRuleStates())
    return Pipeline(
        domains,
        runtime.commands,
        runtime.appender,
        runtime.snapshotter,
        runtime.loader,
        memory.stores.events,
        memory.stores.snapshots,
        memory.stream.produced,
        memory.stream.progress_of(EVENTS),
        runtime.metrics,
        runtime.shredder,
        runtime.marker,
    )
