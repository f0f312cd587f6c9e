"""The ProcessInstances contract (issue 47): an instance is written whole and only over the
revision it was read at; the polls find due deadlines, retries and unsent commands; listing and
counting by process. Memory and MongoDB (SecantusDB of the embedded stack) keep them alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import WriteConcern

from topics.errors import StoreError, StoreUnavailable, Unstorable
from workers.adapters.memory import MemoryProcessInstances
from workers.adapters.mongo import MongoProcessInstances, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.ports import (
    ACTIVE,
    DONE,
    RETRYING,
    STUCK,
    Deadline,
    Fired,
    Instance,
    PendingCommand,
    ProcessInstances,
    Stuck,
    Trigger,
)

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MS = AT.replace(microsecond=123000)  # as the store keeps it


@pytest.fixture(params=["memory", "mongo"])
async def instances(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[ProcessInstances]:
    if request.param == "memory":
        yield MemoryProcessInstances()
        return
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        store = MongoProcessInstances(database(client, unique_name))
        await store.ensure_indexes()
        yield store
    finally:
        await client.drop_database(unique_name)
        await client.close()


def instance(key: str = "o.1", *, process: str = "lifecycle", **fields: object) -> Instance:
    base = Instance(process, key, 1, ACTIVE, {"status": "placed"}, AT, AT, {"order:o.1": 1})
    return replace(base, **fields)  # type: ignore[arg-type]


def command(n: int = 0) -> PendingCommand:
    return PendingCommand(f"pm:lifecycle:e1:{n}", "order", "o.1", "OrderCancelled",
                          {"reason": "late", "n": n}, "e1", "c1")  # fmt: skip


async def test_an_instance_is_written_whole_and_read_back_as_written(
    instances: ProcessInstances,
) -> None:
    deadline = Deadline("d1", "payment", AT + timedelta(seconds=5), {"try": 1})
    stuck = Stuck("command_refused", "order o.1: no", AT, Trigger(b'{"id":"e1"}', deadline), 2)
    full = instance(
        outbox=(command(0), command(1)), unsent_since=AT, deadlines=(deadline,),
        fired=(Fired("d0", "reminder", AT, AT + timedelta(seconds=1)),),
        held=(b'{"id":"e2"}', b"\x00raw"), stuck=stuck,
    )  # fmt: skip
    assert await instances.save(full)
    found = (await instances.load("lifecycle", ["o.1", "missing"]))["o.1"]
    assert found.state == {"status": "placed"} and found.seen == {"order:o.1": 1}
    assert found.outbox == (command(0), command(1)) and found.unsent_since == MS
    assert found.deadlines == (
        replace(deadline, due_at=deadline.due_at.replace(microsecond=123000)),
    )
    assert found.fired[0].name == "reminder" and found.held == (b'{"id":"e2"}', b"\x00raw")
    assert found.stuck is not None and found.stuck.trigger is not None
    assert (found.stuck.reason, found.stuck.attempts, found.stuck.trigger.event) == (
        "command_refused", 2, b'{"id":"e1"}')  # fmt: skip
    assert found.stuck.trigger.deadline is not None and found.stuck.trigger.deadline.id == "d1"
    assert (found.started_at, found.revision) == (MS, 1)
    assert await instances.load("lifecycle", []) == {}
    assert await instances.load("other", ["o.1"]) == {}


async def test_a_write_over_a_revision_another_moved_writes_nothing(
    instances: ProcessInstances,
) -> None:
    assert await instances.save(instance())
    assert not await instances.save(instance(state={"second": "insert"}))  # revision 1 again
    assert await instances.save(instance(revision=2, state={"status": "paid"}))
    assert not await instances.save(instance(revision=2, state={"status": "stale"}))
    assert not await instances.save(instance(revision=4, state={"status": "ahead"}))
    found = (await instances.load("lifecycle", ["o.1"]))["o.1"]
    assert (found.revision, found.state) == (2, {"status": "paid"})


async def test_due_finds_active_instances_with_a_deadline_due_soonest_first(
    instances: ProcessInstances,
) -> None:
    def due_in(key: str, seconds: float, status: str = ACTIVE) -> Instance:
        deadlines = (Deadline(f"{key}-a", "a", AT + timedelta(seconds=seconds + 60)),
                     Deadline(f"{key}-b", "b", AT + timedelta(seconds=seconds)))  # fmt: skip
        return instance(key, deadlines=deadlines, status=status)

    for saved in (due_in("late", 3), due_in("soon", 1), due_in("later", 30),
                  due_in("stuck", 0, STUCK), instance("none"), due_in("x", 2, DONE)):  # fmt: skip
        assert await instances.save(saved)
    assert await instances.save(instance("other", process="billing", deadlines=(
        Deadline("o", "o", AT),)))  # fmt: skip
    found = await instances.due(AT + timedelta(seconds=5), limit=10)
    assert [(i.process, i.key) for i in found] == [
        ("billing", "other"), ("lifecycle", "soon"), ("lifecycle", "late")]  # fmt: skip
    assert [i.key for i in await instances.due(AT + timedelta(seconds=5), limit=1)] == ["other"]
    upcoming = await instances.upcoming("lifecycle", limit=10)
    assert [i.key for i in upcoming] == ["soon", "late", "later"]
    assert upcoming[0].next_due == (AT + timedelta(seconds=1)).replace(microsecond=123000)


async def test_retrying_and_unsent_find_what_the_role_must_finish(
    instances: ProcessInstances,
) -> None:
    old, new = AT - timedelta(seconds=30), AT
    for saved in (
        instance("a", outbox=(command(),), unsent_since=old),
        instance("b", outbox=(command(),), unsent_since=new),
        instance("c", outbox=(command(),), unsent_since=old, status=STUCK),
        instance("d", status=RETRYING),
        instance("e"),
    ):
        assert await instances.save(saved)
    assert [i.key for i in await instances.unsent(AT - timedelta(seconds=10), limit=10)] == ["a"]
    assert [i.key for i in await instances.retrying(limit=10)] == ["d"]
    emptied = instance("a", revision=2, outbox=(), unsent_since=old)
    assert await instances.save(emptied)
    assert [i.key for i in await instances.unsent(AT, limit=10)] == ["b"]
    assert (await instances.load("lifecycle", ["a"]))["a"].unsent_since is None


async def test_pages_by_key_and_counts_by_status(instances: ProcessInstances) -> None:
    for n, status in enumerate((ACTIVE, ACTIVE, STUCK, DONE, ACTIVE)):
        assert await instances.save(instance(f"k{n}", status=status))
    assert await instances.save(instance("k9", process="billing"))
    first = await instances.page("lifecycle", limit=2)
    assert [i.key for i in first] == ["k0", "k1"]
    rest = await instances.page("lifecycle", after="k1", limit=10)
    assert [i.key for i in rest] == ["k2", "k3", "k4"]
    stuck = await instances.page("lifecycle", status=STUCK, limit=10)
    assert [i.key for i in stuck] == ["k2"]
    assert await instances.counts("lifecycle") == {ACTIVE: 3, DONE: 1, STUCK: 1, RETRYING: 0}
    assert await instances.counts("none") == {ACTIVE: 0, DONE: 0, STUCK: 0, RETRYING: 0}


async def test_a_state_too_large_for_mongodb_is_unstorable(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """MongoDB's 16 MB limit (the memory twin keeps none)."""
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        instances = MongoProcessInstances(database(client, unique_name))
        with pytest.raises(Unstorable):
            await instances.save(instance(state={"blob": "x" * (17 * 1024 * 1024)}))
        assert await instances.load("lifecycle", ["o.1"]) == {}
    finally:
        await client.drop_database(unique_name)
        await client.close()


async def test_writes_the_store_did_not_make_as_durable_as_asked_are_never_called_saved(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """A write concern the server cannot meet (more data-bearing nodes than SecantusDB has):
    the server applies the writes and reports a write concern error. Before the fix, a bulk
    write whose only errors were those read its documents back and answered "saved" (and the
    process manager would have sent the commands of an outbox that may roll back)."""
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        instances = MongoProcessInstances(database(client, unique_name))
        assert await instances.save(instance("kept"))
        instances.collection = instances.collection.with_options(
            write_concern=WriteConcern(w=5, wtimeout=200)
        )
        with pytest.raises(StoreError, match="MongoDB refused saving 2 instances"):
            await instances.save_many([instance("new"), instance("kept", revision=2)])
        with pytest.raises(StoreError, match="MongoDB refused saving instance"):
            await instances.save(instance("other"))
    finally:
        await client.drop_database(unique_name)
        await client.close()


async def test_the_memory_twin_is_unavailable_while_down() -> None:
    store = MemoryProcessInstances()
    store.down()
    with pytest.raises(StoreUnavailable, match="process store"):
        await store.save(instance())
    store.up()
    assert await store.save(instance())


async def test_many_are_written_at_once_each_only_over_its_revision(
    instances: ProcessInstances,
) -> None:
    assert await instances.save(instance("moved"))
    assert await instances.save(instance("moved", revision=2))  # another writer went first
    assert await instances.save(instance("kept"))
    written = await instances.save_many([
        instance("new"),  # a first write
        instance("kept", revision=2, state={"n": 2}),  # over revision 1: written
        instance("moved", revision=2, state={"stale": True}),  # over 1, but 2 is stored
    ])  # fmt: skip
    assert written == [True, True, False]
    assert await instances.save_many([]) == []
    assert not await instances.save(instance("new"))  # revision 1 exists now
    found = await instances.load("lifecycle", ["new", "kept", "moved"])
    assert (found["kept"].revision, found["kept"].state) == (2, {"n": 2})
    assert found["moved"].state == {"status": "placed"}
    assert await instances.save(instance("late"))
    assert await instances.save_many([instance("late"), instance("fresh")]) == [False, True]
