"""The command side wired as ``workers.runtime.compose`` wires it, on the ports a test hands in."""

from __future__ import annotations

from snapshot_rules.domain import Domains
from workers.metrics import Metrics
from workers.ports import (
    AppendProgress,
    CommandMemory,
    EventStore,
    LiveFeed,
    Marker,
    Producer,
    Rejections,
    SyncAppender,
)
from workers.roles.command.async_mode import AsyncCommandService
from workers.roles.command.budget import WriteBudget
from workers.roles.command.commands import CommandDispatcher
from workers.roles.command.fate import CommandFate
from workers.roles.command.intake import Intake
from workers.roles.command.ledger import CommandLedger
from workers.roles.command.refusals import RefusalCheck
from workers.roles.command.sync_mode import SyncCommandService


def command_side(
    *,
    domains: Domains,
    marker: Marker,
    memory: CommandMemory,
    store: EventStore,
    rejections: Rejections,
    producer: Producer,
    progress: AppendProgress,
    events_topic: str,
    metrics: Metrics,
    sync: SyncAppender | None = None,
    answer_wait_s: float = 10.0,
    refusal_wait_s: float = 3.0,
    budget: WriteBudget | None = None,
    feed: LiveFeed | None = None,
) -> CommandDispatcher:
    """A dispatcher over an async service and, given ``sync``, a sync one (``budget``: the
    write budgets both draw on)."""
    ledger = CommandLedger(marker, memory)
    fate = CommandFate(store=store, rejections=rejections, ledger=ledger)
    refusals = RefusalCheck(
        ledger=ledger,
        store=store,
        progress=progress,
        wait_s=refusal_wait_s,
        checks=metrics.refusal_checks,
        feed=feed,
    )
    async_mode = AsyncCommandService(
        ledger=ledger, store=store, producer=producer, refusals=refusals, fate=fate,
        events_topic=events_topic, answer_wait_s=answer_wait_s, budget=budget,
    )  # fmt: skip
    sync_mode = None
    if sync is not None:
        sync_mode = SyncCommandService(
            ledger=ledger, appender=sync, fate=fate, answer_wait_s=answer_wait_s, budget=budget
        )
    return CommandDispatcher(
        domains=domains, intake=Intake(), ledger=ledger, metrics=metrics,
        async_mode=async_mode, sync_mode=sync_mode, budget=budget,
    )  # fmt: skip
