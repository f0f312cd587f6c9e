"""The command side of a process, built on its parts: the door's dispatcher over both modes, the
sync mode's outbox, the outcomes desk, the partitions' progress and the write budgets."""

from __future__ import annotations

from dataclasses import dataclass

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames
from workers.cqrs.repository import Repository
from workers.cqrs.sync import SyncCommands
from workers.metrics import Metrics
from workers.ports import LiveFeed, Rejections
from workers.roles.append.outbox import Outbox
from workers.roles.command.async_mode import AsyncCommandService
from workers.roles.command.budget import BudgetPolicy, WriteBudget
from workers.roles.command.commands import CommandDispatcher
from workers.roles.command.fate import CommandFate
from workers.roles.command.intake import Intake
from workers.roles.command.ledger import CommandLedger
from workers.roles.command.refusals import RefusalCheck
from workers.roles.command.resolver import UnknownResolver
from workers.roles.command.sync_mode import SyncCommandService
from workers.roles.ops.archive import TieredEvents
from workers.roles.outcomes import Outcomes
from workers.roles.personal import Shredder
from workers.roles.state import StateLoader
from workers.runtime.adapters import Marks, ProducerClient, Progress, Stream
from workers.runtime.announcing import AnnouncingProducer
from workers.runtime.settings import Settings


@dataclass(frozen=True, slots=True)
class CommandStores:
    """What the command side reads and writes at the store."""

    events: TieredEvents
    rejections: Rejections
    loader: StateLoader
    shredder: Shredder


@dataclass(frozen=True, slots=True)
class CommandSide:
    """The parts of the commands role (and of the pm role, which sends through the door)."""

    outbox: Outbox
    sync: SyncCommands
    outcomes: Outcomes
    progress: Progress
    budget: WriteBudget
    commands: CommandDispatcher


def command_side(
    settings: Settings,
    domains: Domains,
    metrics: Metrics,
    names: TopicNames,
    *,
    stores: CommandStores,
    stream: Stream,
    marks: Marks,
    producer: ProducerClient,
    feed: LiveFeed,
) -> CommandSide:
    """The command side over ``stores``, the stream's probes, the marks, the ``producer`` and
    the live ``feed`` (a refusal waiting for the appender hears there what it stored)."""
    events = stores.events
    outbox = Outbox(events, producer, topic=names.stored, metrics=metrics, mode="sync")
    sync = SyncCommands(
        repository=Repository(stores.loader, atomic=events),
        outbox=outbox,
        metrics=metrics,
        publish_budget_s=settings.sync_publish_budget_ms / 1000,
    )
    resolver = UnknownResolver(
        probe=stream.probe(),
        memory=marks.memory,
        events_topic=names.events,
        marker=marks.marker,
        metrics=metrics,
    )
    outcomes = Outcomes(
        domains=domains,
        store=events,
        rejections=stores.rejections,
        memory=marks.memory,
        resolver=resolver,
    )
    progress = stream.progress(
        topic=names.events, partitions=settings.partitions, group_prefix=f"{settings.group_id}-"
    )
    ledger = CommandLedger(marks.marker, marks.memory)
    fate = CommandFate(store=events, rejections=stores.rejections, ledger=ledger)
    answer_wait_s = settings.kafka_timeout_ms / 1000 * 2
    budget = write_budget(settings, marks, metrics)
    # Async commands produce to the events topic only, which no one announces: the producer
    # itself, not the wrapper that would pass each record through.
    plain = producer.producer if isinstance(producer, AnnouncingProducer) else producer
    async_mode = AsyncCommandService(
        ledger=ledger,
        store=events,
        producer=plain,
        refusals=RefusalCheck(
            ledger=ledger,
            store=events,
            progress=progress,
            wait_s=settings.refusal_wait_ms / 1000,
            checks=metrics.refusal_checks,
            feed=feed,
        ),
        fate=fate,
        events_topic=names.events,
        answer_wait_s=answer_wait_s,
        budget=budget,
    )
    sync_mode = SyncCommandService(
        ledger=ledger, appender=sync, fate=fate, answer_wait_s=answer_wait_s, budget=budget
    )
    commands = CommandDispatcher(
        domains=domains,
        intake=Intake(loader=stores.loader, shredder=stores.shredder),
        ledger=ledger,
        metrics=metrics,
        budget=budget,
        async_mode=async_mode,
        sync_mode=sync_mode,
    )
    return CommandSide(outbox, sync, outcomes, progress, budget, commands)


def write_budget(settings: Settings, marks: Marks, metrics: Metrics) -> WriteBudget:
    """The principals' write budgets, which both modes draw on (``EVENTFLEET_WRITE_BUDGET_*``)."""
    policy = BudgetPolicy.parse(
        settings.write_budget_per_s,
        settings.write_budget_burst,
        principals=settings.write_budget_principals,
        roles=settings.write_budget_roles,
    )
    return WriteBudget(policy=policy, budgets=marks.budgets, metrics=metrics)
