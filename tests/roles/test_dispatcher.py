"""The command side's door: a request is taken in once and answered by its domain's mode."""

from __future__ import annotations

from snapshot_rules.domain import Domains
from tests.orders import ITEMS
from tests.roles.command_side import command_side
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
)
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.metrics import create_metrics
from workers.roles.command.requests import CommandRequest
from workers.roles.outcomes import Accepted, Refused

EVENTS = "d.events"


async def test_a_sync_domain_without_a_sync_mode_is_refused_and_nothing_is_written() -> None:
    store, producer, marker = (
        MemoryEventStore(),
        MemoryProducer(default_partitions=1),
        MemoryMarker(),
    )
    memory = MemoryCommandMemory(records=marker.records)
    dispatcher = command_side(
        domains=Domains([ORDER, ACCOUNT]), marker=marker, memory=memory, store=store,
        rejections=MemoryRejections(), producer=producer,
        progress=MemoryAppendProgress(producer, EVENTS), events_topic=EVENTS,
        metrics=create_metrics(),
    )  # fmt: skip
    request = CommandRequest("account", "a1", "AccountOpened", {"owner": "ann"}, command_id="c1")
    outcome = await dispatcher.handle(request)
    assert isinstance(outcome, Refused) and outcome.code == "unknown_aggregate_type"
    assert "no sync service" in outcome.message
    assert producer.records(EVENTS) == [] and await store.select(("account", "a1")) == []
    placed = await dispatcher.handle(CommandRequest("order", "o1", "OrderPlaced", ITEMS))
    assert isinstance(placed, Accepted)  # the async mode answers beside it
    assert len(producer.records(EVENTS)) == 1
