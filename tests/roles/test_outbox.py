"""The outbox: stored events reach events.stored now, or later through the relay, at least once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.waiting import wait_for
from topics.envelope import Event, decode, kafka_headers, utc_now
from topics.errors import StoreUnavailable, StreamUnavailable
from workers.adapters.memory import MemoryEventStore, MemoryProducer, partition_for
from workers.metrics import Metrics
from workers.roles.append.outbox import Outbox

from .support import added, sample

STORED = "t.events.stored"
LONG_AGO = utc_now() - timedelta(minutes=5)


@pytest.fixture
def outbox(events: MemoryEventStore, producer: MemoryProducer, metrics: Metrics) -> Outbox:
    return Outbox(events, producer, topic=STORED, metrics=metrics, mode="sync")


async def flagged(events: MemoryEventStore, batch: list[Event]) -> list[Event]:
    await events.append(batch, pending_publish=True)
    return batch


async def waiting(events: MemoryEventStore) -> list[str]:
    return [e.id for e in await events.pending(older_than=utc_now() + timedelta(days=1), limit=0)]


def on_stream(producer: MemoryProducer) -> list[tuple[str, int | None]]:
    return [
        (decode(r.value).aggregate_id, decode(r.value).version) for r in producer.records(STORED)
    ]


def published(metrics: Metrics) -> float:
    return sample(metrics, "eventfleet_events_published_total", mode="sync")


async def test_publish_produces_keyed_events_and_clears_their_flag(
    outbox: Outbox, events: MemoryEventStore, producer: MemoryProducer, metrics: Metrics
) -> None:
    batch = await flagged(events, [*added("a", [1, 2]), *added("b", [1])])
    await outbox.publish(batch)
    records = producer.records(STORED)
    assert [decode(r.value) for r in records] == batch
    for event, record in zip(batch, records, strict=True):
        assert record.key == event.key and list(record.headers) == kafka_headers(event)
        assert record.partition == partition_for(event.key, 3)
    assert await waiting(events) == [] and published(metrics) == 3


async def test_kafka_down_leaves_the_flags_and_the_relay_publishes_later(
    outbox: Outbox, events: MemoryEventStore, producer: MemoryProducer, metrics: Metrics
) -> None:
    batch = await flagged(events, added("k1", [1, 2], at=LONG_AGO))
    producer.down()
    with pytest.raises(StreamUnavailable):
        await outbox.publish(batch)
    assert await waiting(events) == [e.id for e in batch] and producer.records(STORED) == []
    with pytest.raises(StreamUnavailable):
        await outbox.relay_once(older_than_s=0)
    producer.up()
    assert await outbox.relay_once(older_than_s=0) == 2
    assert on_stream(producer) == [("k1", 1), ("k1", 2)]
    assert await waiting(events) == [] and await outbox.relay_once(older_than_s=0) == 0
    assert published(metrics) == 2


async def test_a_produce_cut_short_is_published_again_whole_in_order(
    outbox: Outbox, events: MemoryEventStore, producer: MemoryProducer
) -> None:
    batch = await flagged(events, added("p1", [1, 2, 3], at=LONG_AGO))
    producer.fail_after(1)  # Kafka took the first record, then stopped answering
    with pytest.raises(StreamUnavailable):
        await outbox.publish(batch)
    assert len(await waiting(events)) == 3
    assert await outbox.relay_once(older_than_s=0) == 3
    # At least once: version 1 twice, and every copy in version order per key.
    assert on_stream(producer) == [("p1", 1), ("p1", 1), ("p1", 2), ("p1", 3)]


async def test_the_store_down_after_producing_keeps_the_flag_and_duplicates_later(
    outbox: Outbox, events: MemoryEventStore, producer: MemoryProducer
) -> None:
    batch = await flagged(events, added("s1", [1], at=LONG_AGO))
    events.fail_next(on="clear_pending")
    with pytest.raises(StoreUnavailable):
        await outbox.publish(batch)
    assert len(producer.records(STORED)) == 1 and await waiting(events) == [batch[0].id]
    assert await outbox.relay_once(older_than_s=0) == 1
    assert on_stream(producer) == [("s1", 1), ("s1", 1)] and await waiting(events) == []


async def test_the_relay_takes_only_events_older_than_a_writers_own_attempt(
    outbox: Outbox, events: MemoryEventStore, producer: MemoryProducer
) -> None:
    old = await flagged(events, added("o", [1, 2], at=LONG_AGO))
    fresh = await flagged(events, added("f", [1], at=utc_now()))
    assert await outbox.relay_once(older_than_s=60) == 2
    assert on_stream(producer) == [("o", 1), ("o", 2)]
    assert await waiting(events) == [fresh[0].id] and old[0].id not in await waiting(events)


async def test_the_relay_works_in_bounded_rounds_by_aggregate_and_version(
    outbox: Outbox, events: MemoryEventStore, producer: MemoryProducer
) -> None:
    await flagged(events, [*added("b", [1, 2], at=LONG_AGO), *added("a", [1, 2], at=LONG_AGO)])
    assert await outbox.relay_once(older_than_s=0, limit=3) == 3
    assert await outbox.relay_once(older_than_s=0, limit=3) == 1
    assert on_stream(producer) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


async def test_the_relay_loop_waits_out_an_outage_and_then_catches_up(
    outbox: Outbox, events: MemoryEventStore, producer: MemoryProducer
) -> None:
    await flagged(events, added("r", [1, 2, 3], at=LONG_AGO))
    producer.down()
    events.fail_next(on="pending")  # the store is briefly down too
    loop = asyncio.create_task(outbox.run(older_than_s=0, interval_s=0.01))
    try:
        await wait_for(
            lambda: producer.calls["send"] >= 2, timeout_s=5, what="the loop to try again"
        )
        assert not loop.done() and producer.records(STORED) == []
        producer.up()

        async def relayed() -> bool:
            return await waiting(events) == []

        await wait_for(relayed, timeout_s=5, what="the loop to relay every flagged event")
        assert on_stream(producer) == [("r", 1), ("r", 2), ("r", 3)]
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
