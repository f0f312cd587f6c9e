"""The command side of one commands process on memory adapters, both modes, as the role tests
drive it: ``Side`` and ``make_side``, the topic names and order items they use, and a wait for a
refusal to stand waiting on the appender's progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from snapshot_rules.domain import Domains
from tests.clock import Clock
from tests.roles.command_side import command_side
from tests.roles.support import sample
from topics.envelope import decode
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryLiveFeed,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
    MemorySnapshotStore,
)
from workers.cqrs.repository import Repository
from workers.cqrs.sync import SyncCommands
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.metrics import REFUSAL_DECISIONS, Metrics, create_metrics
from workers.ports import Outgoing
from workers.roles.append.outbox import Outbox
from workers.roles.command.commands import CommandDispatcher
from workers.roles.command.requests import CommandRequest
from workers.roles.outcomes import Outcomes
from workers.roles.state import StateLoader
from workers.runtime.answers import Answer, answer_of

EVENTS, STORED = "t.events", "t.events.stored"


@dataclass
class Side:
    """A command service on memory adapters, as one commands process has it."""

    service: CommandDispatcher
    outcomes: Outcomes
    store: MemoryEventStore
    producer: MemoryProducer
    marker: MemoryMarker
    memory: MemoryCommandMemory
    rejections: MemoryRejections
    progress: MemoryAppendProgress
    clock: Clock
    feed: MemoryLiveFeed
    metrics: Metrics

    async def ask(self, aggregate: str, kind: str, data: object, **kw: str) -> Answer:
        kind_type, aggregate_id = aggregate.split(":")
        request = CommandRequest(kind_type, aggregate_id, kind, data, **kw)  # type: ignore[arg-type]
        return answer_of(await self.service.handle(request))

    async def stored_as_produced(self) -> None:
        """What the appender does: store every produced event in order, and catch up."""
        await self.store_produced()
        self.progress.decide_all()

    async def store_produced(self) -> None:
        """Store every produced event in order and announce it; the appender's group commits
        nothing yet."""
        versions: dict[tuple[str, str], int] = {}
        for record in self.producer.records(EVENTS):
            event = decode(record.value)
            ref = (event.aggregate_type, event.aggregate_id)
            versions[ref] = versions.get(ref, 0) + 1
            if event.id not in await self.store.find([event.id]):
                stored = event.with_version(versions[ref])
                await self.store.append([stored])
                self.feed.announce([Outgoing.of(stored)])

    def refusals_decided(self) -> dict[str, float]:
        """``eventfleet_refusal_checks_total`` by what decided, those counted."""
        counted = "eventfleet_refusal_checks_total"
        found = {how: sample(self.metrics, counted, decided=how) for how in REFUSAL_DECISIONS}
        return {how: count for how, count in found.items() if count}

    def produced(self) -> list[tuple[str, str | None]]:
        return [(decode(r.value).id, decode(r.value).after) for r in self.producer.records(EVENTS)]


def make_side(*, refusal_wait_s: float = 0.05) -> Side:
    """The command side of one commands process, on memory adapters, both modes."""
    clock = Clock()
    metrics = create_metrics()
    store, producer = MemoryEventStore(), MemoryProducer(default_partitions=1)
    marker = MemoryMarker(clock=clock)
    memory = MemoryCommandMemory(clock=clock, records=marker.records)
    rejections = MemoryRejections()
    progress = MemoryAppendProgress(producer, EVENTS)
    feed = MemoryLiveFeed()
    loader = StateLoader(store, MemorySnapshotStore(), metrics)
    outbox = Outbox(store, producer, topic=STORED, metrics=metrics, mode="sync")
    sync = SyncCommands(repository=Repository(loader), outbox=outbox, metrics=metrics)
    domains = Domains([ORDER, ACCOUNT])
    service = command_side(
        domains=domains,
        marker=marker,
        memory=memory,
        store=store,
        rejections=rejections,
        producer=producer,
        progress=progress,
        events_topic=EVENTS,
        metrics=metrics,
        sync=sync,
        answer_wait_s=0.2,
        refusal_wait_s=refusal_wait_s,
        feed=feed,
    )
    outcomes = Outcomes(domains=domains, store=store, rejections=rejections, memory=memory)
    return Side(
        service,
        outcomes,
        store,
        producer,
        marker,
        memory,
        rejections,
        progress,
        clock,
        feed,
        metrics,
    )


def waiting_on_progress(side: Side) -> Callable[[], bool]:
    return lambda: side.progress.faults.calls["caught_up"] == 1
