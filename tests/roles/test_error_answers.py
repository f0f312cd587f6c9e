"""Error answers of the role logic (issue 15): a version past the newest, sync refusals' fields,
a store refusal's status on a retry."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from snapshot_rules.domain import Domains, Mode
from snapshot_rules.replay import State, replay
from tests.orders import ITEMS
from tests.roles.command_side import command_side
from topics.envelope import Event, derived_event_id, utc_now
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
    MemorySnapshotStore,
)
from workers.examples.domains.order import ORDER
from workers.metrics import Metrics
from workers.ports import Rejection
from workers.roles.command.requests import CommandRequest
from workers.roles.state import StateLoader, VersionNotFound
from workers.runtime.answers import answer_of

from .pipeline import pipeline
from .support import COUNTER, T0, added


def at_most_ten(state: State | None, requested: Event) -> str | None:
    """A sync order's own rule: payments above 10 are refused, whatever came before."""
    if requested.type == "OrderPaid" and requested.data["amount"] > 10:
        return f"a payment of {requested.data['amount']} is above 10"
    return None


SYNC_ORDER = replace(ORDER, mode=Mode.SYNC, validator=at_most_ten)


async def test_exactly_at_names_the_newest_version_when_asked_past_it(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    loader = StateLoader(events, snapshots, metrics)
    await events.append(added("c1", range(1, 5)))
    with pytest.raises(VersionNotFound) as caught:
        await loader.exactly_at(COUNTER, "c1", version=99)
    assert caught.value.newest == 4
    assert "counter c1 has 4 events, so there is no version 99" in str(caught.value)
    truth = replay(COUNTER.reducer, added("c1", range(1, 5)))
    assert await loader.exactly_at(COUNTER, "c1", version=4) == truth
    assert await loader.at(COUNTER, "c1", version=99) == truth  # ``at`` itself is unchanged
    # No events at all is the caller's not-found; a moment before a version is not "past" it.
    assert (await loader.exactly_at(COUNTER, "nobody", version=3)).version == 0
    early = await loader.exactly_at(COUNTER, "c1", version=4, as_of=T0 + timedelta(seconds=2))
    assert early.version == 2


async def test_a_sync_refusal_lists_allowed_only_when_the_declared_transitions_decided() -> None:
    p = await pipeline(Domains([SYNC_ORDER]))
    early = await p.ask("order:o1", "OrderPaid", {"amount": 2})
    assert (early.status, early.body["error"]) == (409, "transition_rejected")
    assert early.body["current"] is None and early.body["allowed"] == ["OrderPlaced"]
    assert (await p.ask("order:o1", "OrderPlaced", ITEMS)).status == 201
    refused = await p.ask("order:o1", "OrderPaid", {"amount": 11})
    assert (refused.status, refused.body["error"]) == (409, "transition_rejected")
    assert refused.body["current"] == "OrderPlaced" and "allowed" not in refused.body
    assert "a payment of 11 is above 10" in refused.body["message"]


async def test_a_store_refusal_for_invalid_data_answers_a_retry_with_422(metrics: Metrics) -> None:
    store, rejections = MemoryEventStore(), MemoryRejections()
    marker, producer = MemoryMarker(), MemoryProducer(default_partitions=1)
    service = command_side(
        domains=Domains([ORDER]), marker=marker, memory=MemoryCommandMemory(),
        store=store, rejections=rejections, producer=producer,
        progress=MemoryAppendProgress(producer, "t.events"), events_topic="t.events",
        metrics=metrics,
    )  # fmt: skip
    placed = answer_of(await service.handle(CommandRequest("order", "o1", "OrderPlaced", ITEMS)))
    assert placed.status == 202
    shipped_id = derived_event_id("order", "o1", "ship-1")
    await rejections.record(
        [Rejection(shipped_id, "order", "o1", "OrderShipped", "invalid_data",
                   "OrderShipped: data.carrier is too long.", "ship-1", utc_now())]
    )  # fmt: skip
    request = CommandRequest("order", "o1", "OrderShipped", {"carrier": "dhl"}, command_id="ship-1")
    retry = answer_of(await service.handle(request))
    assert (retry.status, retry.body["error"]) == (422, "invalid_data")  # as the command side says
    assert retry.body["event_id"] == shipped_id
