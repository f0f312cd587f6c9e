"""The switches only the in-memory adapters have: what role tests use to stage an outage."""

from __future__ import annotations

import asyncio

import pytest

from tests.waiting import wait_for
from topics.envelope import Event, new_event
from topics.errors import StoreError, StoreUnavailable, StreamUnavailable
from workers.adapters.memory import (
    MemoryDatabase,
    MemoryEventStore,
    MemoryProducer,
    MemorySnapshotStore,
    MemoryViewStaging,
    MemoryViewStore,
)
from workers.ports import Outgoing, ViewDoc


def event(version: int = 1) -> Event:
    return new_event("order", "o1", "OrderPaid", {}, version=version)


async def test_down_until_up_and_the_message_says_what_to_do() -> None:
    store = MemoryEventStore()
    store.down()
    with pytest.raises(StoreUnavailable, match=r"while reading order o1: .* call up\(\)"):
        await store.select(("order", "o1"))
    store.up()
    assert await store.select(("order", "o1")) == []
    assert store.calls["select"] == 2


async def test_fail_next_fails_that_many_calls_of_the_named_operation() -> None:
    snapshots = MemorySnapshotStore()
    snapshots.fail_next(2, on="load")
    assert await snapshots.load_many([("order", "a")]) == {}  # another operation: unaffected
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            await snapshots.load(("order", "a"))
    assert await snapshots.load(("order", "a")) is None
    refused = StoreError("a planned refusal")
    snapshots.fail_next(error=refused)
    with pytest.raises(StoreError) as caught:
        await snapshots.load(("order", "a"))
    assert caught.value is refused
    with pytest.raises(ValueError, match="n >= 1"):
        snapshots.fail_next(0)


async def test_held_calls_wait_until_released() -> None:
    store = MemoryEventStore()
    store.hold(on="append")
    appending = asyncio.create_task(store.append([event()]))
    await wait_for(lambda: store.held == 1, timeout_s=5, what="the append to be held")
    assert await store.select(("order", "o1")) == []  # other operations go on
    store.release()
    await appending
    assert store.held == 0 and len(await store.select(("order", "o1"))) == 1


async def test_views_and_stagings_share_their_database_outage() -> None:
    db = MemoryDatabase()
    views, staging = MemoryViewStore(db, "v"), MemoryViewStaging(db, "v")
    views.down()
    with pytest.raises(StoreUnavailable):
        await staging.staging("g")
    db.up()
    temp = await staging.staging("g")
    staging.fail_next(on="insert_many")
    await temp.insert_many([])  # nothing to insert: no call, so the failure is not used up
    assert db.calls["insert_many"] == 0
    with pytest.raises(StoreUnavailable):
        await temp.insert_many([ViewDoc("chat_room", "r", 1, {})])
    await temp.insert_many([ViewDoc("chat_room", "r", 1, {})])
    assert await temp.versions() == {("chat_room", "r"): 1}


async def test_a_produce_cut_short_acknowledges_only_the_first_records() -> None:
    producer = MemoryProducer(partitions={"t": 2})
    producer.fail_after(1)
    messages = [Outgoing(b"a", b"1"), Outgoing(b"b", b"2")]
    with pytest.raises(StreamUnavailable, match="1 of 2"):
        await producer.send_many("t", messages)
    assert [r.value for r in producer.records("t")] == [b"1"]
    await producer.send_many("t", messages)  # only the next call was cut
    assert [r.value for r in producer.records("t")] == [b"1", b"1", b"2"]
    for partition in (0, 1):
        assert all(r.partition == partition for r in producer.records("t", partition=partition))
    assert producer.topics() == ["t"] and producer.partitions("elsewhere") == 1
    producer.fail_next(error=RuntimeError("planned"))
    with pytest.raises(RuntimeError, match="planned"):
        await producer.send("t", messages[0])
    with pytest.raises(ValueError, match="delivered >= 0"):
        producer.fail_after(-1)


async def test_fail_next_after_lets_that_many_calls_through_first() -> None:
    store = MemoryEventStore()
    store.fail_next(on="select", after=2)
    assert await store.select(("order", "o1")) == [] and await store.select(("order", "o1")) == []
    with pytest.raises(StoreUnavailable):
        await store.select(("order", "o1"))
    assert await store.select(("order", "o1")) == []
    with pytest.raises(ValueError, match="after >= 0"):
        store.fail_next(after=-1)


async def test_a_topic_names_the_producer_calls_to_fail_or_hold() -> None:
    producer = MemoryProducer()
    producer.fail_next(on="second")
    await producer.send("first", Outgoing(b"k", b"1"))
    with pytest.raises(StreamUnavailable, match="second"):
        await producer.send("second", Outgoing(b"k", b"2"))
    producer.hold(on="first")
    held = asyncio.create_task(producer.send("first", Outgoing(b"k", b"3")))
    await wait_for(lambda: producer.held == 1, timeout_s=5, what="the send to be held")
    await producer.send("second", Outgoing(b"k", b"4"))
    producer.release()
    await held
    assert [r.value for r in producer.records("first")] == [b"1", b"3"]
