"""A snapshot or view the store will never take parks its aggregate, never the partition."""

from __future__ import annotations

import asyncio

import pytest

from snapshot_rules.domain import Domains
from tests.chat_events import CONVERSATION, ROOM, room_events
from topics.errors import StoreError, Unstorable
from workers.adapters.memory import (
    MemoryEventStore,
    MemoryProducer,
    MemoryRuleStates,
    MemorySnapshotStore,
)
from workers.metrics import Metrics
from workers.roles.deadletter import DeadLetters
from workers.roles.read.projections import Applied, ProjectionRunner
from workers.roles.read.snapshotter import Snapshotter
from workers.roles.state import StateLoader

from .chat import Wiring
from .support import COUNTER, added, sample

DLQ = "t.events.dlq"
TOO_LARGE = Unstorable("MongoDB cannot store the value: BSON document too large (17647638 bytes).")
REFUSED = StoreError("MongoDB refused saving the snapshot: document failed validation")


def reasons(producer: MemoryProducer) -> list[tuple[str, bytes]]:
    return [(dict(r.headers)["dlq_reason"].decode(), r.key or b"") for r in producer.records(DLQ)]


def parked(metrics: Metrics, role: str, reason: str) -> float:
    return sample(metrics, "eventfleet_aggregates_parked_total", role=role, reason=reason)


@pytest.mark.parametrize("error", [TOO_LARGE, REFUSED], ids=["too_large", "refused"])
async def test_an_unstorable_snapshot_parks_its_aggregate_and_the_rest_moves_on(
    error: Exception,
    events: MemoryEventStore,
    snapshots: MemorySnapshotStore,
    producer: MemoryProducer,
    metrics: Metrics,
) -> None:
    letters = DeadLetters(producer, topic=DLQ, role="snapshotter", metrics=metrics)
    loader = StateLoader(events, snapshots, metrics)
    snapshotter = Snapshotter(
        rule_states=MemoryRuleStates(),
        loader=loader, domains=Domains([COUNTER]), metrics=metrics, concurrency=2,
        dead_letters=letters,
    )  # fmt: skip
    big, small = added("big", [1, 2, 3]), added("small", [1, 2, 3])
    await events.append(big + small)
    snapshots.fail_next(1, error, on="save")
    await asyncio.gather(*await snapshotter.handle(big))  # returns: the batch can be acked
    await asyncio.gather(*await snapshotter.handle(small))
    assert [s.aggregate_id for s in snapshots.saved] == ["small"]
    assert reasons(producer) == [("snapshot_failed", b"counter:big")]
    assert parked(metrics, "snapshotter", "snapshot_failed") == 1
    more = added("big", [4, 5, 6])
    await events.append(more)
    assert await snapshotter.handle(more) == []  # parked until restart: no loop on it


async def test_a_refused_read_is_not_the_aggregates_fault_and_stops_the_role(
    events: MemoryEventStore, snapshots: MemorySnapshotStore, metrics: Metrics
) -> None:
    snapshotter = Snapshotter(
        rule_states=MemoryRuleStates(),
        loader=StateLoader(events, snapshots, metrics), domains=Domains([COUNTER]),
        metrics=metrics, concurrency=1,
    )  # fmt: skip
    await events.append(added("c1", [1, 2, 3]))
    events.fail_next(error=StoreError("MongoDB refused reading: not authorized"), on="select")
    [task] = await snapshotter.handle(added("c1", [1, 2, 3]))
    with pytest.raises(StoreError, match="not authorized"):
        await task  # the agent stops the process with the batch unacked
    assert parked(metrics, "snapshotter", "snapshot_failed") == 0


@pytest.mark.parametrize("error", [TOO_LARGE, REFUSED], ids=["too_large", "refused"])
async def test_an_unstorable_view_parks_its_room_and_other_rooms_move_on(
    error: Exception, wiring: Wiring, producer: MemoryProducer, metrics: Metrics
) -> None:
    letters = DeadLetters(producer, topic=DLQ, role="projection", metrics=metrics)
    runner = ProjectionRunner(
        wiring.runner.projection, views=wiring.views, events=wiring.events, metrics=metrics,
        dead_letters=letters,
    )  # fmt: skip
    big = await wiring.store(room_events("big", CONVERSATION))
    small = await wiring.store(room_events("small", CONVERSATION))
    wiring.db.fail_next(1, error, on="write")
    await runner.handle(big)
    assert await runner.handle(small) == Applied(len(small), 0)
    assert await wiring.views.load((ROOM, "big")) is None
    doc = await wiring.views.load((ROOM, "small"))
    assert doc is not None and doc.version == len(small)
    assert reasons(producer) == [("projection_failed", b"chat_room:big")]
    assert parked(metrics, "projection", "projection_failed") == 1
    assert (await runner.handle(big)).applied == 0  # parked: skipped
