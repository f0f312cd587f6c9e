"""``SyncAppender.append_many``: one event to each of several sync aggregates, all stored or none,
on the runtime built on the memory adapters and on the real stack (``synced``).

Each item is judged on its own aggregate's state and its own expected version; the first item
refused refuses the whole request (RefusedItem naming its index) and nothing is stored or
published; the events stored together are published together. Event ids derived from one
command id make a retry safe (all stored: a duplicate; some: CommandReused).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from snapshot_rules.domain import Domains
from tests.waiting import wait_for
from topics.envelope import Metadata, decode, derived_event_id
from topics.errors import (
    CommandReused,
    InvalidEventData,
    StoreUnavailable,
    UnknownEventType,
    WrongExpectedVersion,
)
from topics.jsonvalue import Json
from workers.adapters.memory import MemoryEventStore
from workers.cqrs import StateRejected
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.ports import AppendItem, RefusedItem, SyncResults
from workers.runtime.adapters import MemoryAdapters, memory_adapters
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings

from .synced import Synced

META = Metadata(client_id="t", command_id="transfer-1")


def item(
    aggregate_id: str, kind: str, expected_version: int | None = None, **data: Json
) -> AppendItem:
    return AppendItem(ACCOUNT, aggregate_id, kind, data, expected_version=expected_version)


def derived(items: list[AppendItem], command: str) -> list[AppendItem]:
    """The items with the event ids a command id gives them."""
    return [
        AppendItem(i.domain, i.aggregate_id, i.event_type, i.data,
                   derived_event_id("account", i.aggregate_id, command), i.expected_version)
        for i in items
    ]  # fmt: skip


async def opened(s: Synced, *ids: str, balance: int = 0) -> None:
    for aggregate_id in ids:
        await s.sync.append(ACCOUNT, aggregate_id, "AccountOpened", {"owner": "o"}, META)
        if balance:
            await s.sync.append(ACCOUNT, aggregate_id, "MoneyDeposited", {"amount": balance}, META)


async def versions(s: Synced, *ids: str) -> list[list[int]]:
    return [[e.version or 0 for e in await s.stored(i)] for i in ids]


async def test_a_transfer_is_stored_at_each_next_version_and_published_together(
    s: Synced,
) -> None:
    await opened(s, "t1", balance=100)
    await opened(s, "t2")
    before = await s.published()
    moved = await s.sync.append_many(
        [item("t1", "MoneyWithdrawn", amount=30), item("t2", "MoneyDeposited", amount=30)], META
    )
    assert [(e.aggregate_id, e.version) for e in moved.events] == [("t1", 3), ("t2", 2)]
    assert moved.published and not moved.duplicate
    assert all(e.metadata == META for e in moved.events)
    assert (await s.stored("t1"))[-1] == moved.events[0]
    assert (await s.stored("t2"))[-1] == moved.events[1]
    after = await s.published()  # in the order read: per partition only
    assert len(after) == len(before) + 2
    assert set(after) - set(before) == {e.id for e in moved.events}


async def test_the_third_item_refused_stores_nothing_of_the_first_two(s: Synced) -> None:
    await opened(s, "r1", "r2", "r3", balance=10)
    published = await s.published()
    with pytest.raises(RefusedItem) as by_rules:
        await s.sync.append_many(
            [item("r1", "MoneyDeposited", amount=5), item("r2", "MoneyDeposited", amount=5),
             item("r3", "MoneyWithdrawn", amount=50)], META,
        )  # fmt: skip
    assert by_rules.value.index == 2 and isinstance(by_rules.value.error, StateRejected)
    assert "overdraw" in str(by_rules.value)
    with pytest.raises(RefusedItem) as by_version:
        await s.sync.append_many(
            [item("r1", "MoneyDeposited", 2, amount=5), item("r2", "MoneyDeposited", 2, amount=5),
             item("r3", "MoneyDeposited", 1, amount=5)], META,
        )  # fmt: skip
    stale = by_version.value.error
    assert by_version.value.index == 2 and isinstance(stale, WrongExpectedVersion)
    assert (stale.expected, stale.current) == (1, 2)
    assert await versions(s, "r1", "r2", "r3") == [[1, 2]] * 3
    assert sorted(await s.published()) == sorted(published)


async def test_each_item_has_its_own_expected_version(s: Synced) -> None:
    await opened(s, "e1", balance=10)
    both = await s.sync.append_many(
        [item("e1", "MoneyWithdrawn", 2, amount=10), item("e2", "AccountOpened", 0, owner="n")],
        META,
    )
    assert [e.version for e in both.events] == [3, 1]
    assert [e.expected_version for e in both.events] == [2, 0]
    for expected in (2, 0, 7):  # stale, "new", ahead: e1 is at 3
        with pytest.raises(RefusedItem) as caught:
            await s.sync.append_many(
                [item("e1", "MoneyDeposited", expected, amount=1),
                 item("e3", "AccountOpened", 0, owner="n")], META,
            )  # fmt: skip
        assert caught.value.index == 0 and isinstance(caught.value.error, WrongExpectedVersion)
    assert await versions(s, "e1", "e3") == [[1, 2, 3], []]


async def test_bad_input_of_an_item_is_refused_before_anything_is_read(s: Synced) -> None:
    with pytest.raises(RefusedItem) as unknown:
        await s.sync.append_many(
            [item("b1", "AccountOpened", owner="x"), item("b2", "AccountRenamed")], META
        )
    assert unknown.value.index == 1 and isinstance(unknown.value.error, UnknownEventType)
    with pytest.raises(RefusedItem) as invalid:
        await s.sync.append_many([item("b1", "AccountOpened", owner=7)], META)
    assert invalid.value.index == 0 and isinstance(invalid.value.error, InvalidEventData)
    for wrong, what in (
        ([], "at least one"),
        ([item("b1", "AccountOpened", owner="x"), AppendItem(ORDER, "o1", "OrderPlaced", {})],
         "order is an async domain"),
        ([item("b1", "AccountOpened", owner="x"), item("b1", "AccountClosed")], "two items"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=what):
            await s.sync.append_many(wrong, META)
    assert await versions(s, "b1", "b2") == [[], []]


async def test_a_retry_under_the_same_ids_is_answered_the_stored_events(s: Synced) -> None:
    await opened(s, "d1", balance=40)
    transfer = derived(
        [item("d1", "MoneyWithdrawn", amount=40), item("d2", "AccountOpened", owner="d")], "c1"
    )
    first = await s.sync.append_many(transfer, META)
    again = await s.sync.append_many(transfer, META)
    assert again.duplicate and again.events == first.events
    assert await versions(s, "d1", "d2") == [[1, 2, 3], [1]]  # stored once
    with pytest.raises(CommandReused, match="d1") as reused:
        await s.sync.append_many(
            derived([item("d1", "AccountClosed"), item("d3", "AccountOpened", owner="x")], "c1"),
            META,
        )
    assert "d3" in str(reused.value) and "new command id" in str(reused.value)
    assert await versions(s, "d1", "d3") == [[1, 2, 3], []]


async def test_a_store_that_does_not_answer_raises_and_stores_nothing(s: Synced) -> None:
    await opened(s, "u1")
    s.store_down()
    try:
        with pytest.raises(StoreUnavailable):
            await s.sync.append_many(
                [item("u1", "MoneyDeposited", amount=1), item("u2", "AccountOpened", owner="u")],
                META,
            )
    finally:
        s.store_up()
    assert await versions(s, "u1", "u2") == [[1], []]


async def test_of_concurrent_transfers_with_one_expectation_one_is_stored(s: Synced) -> None:
    """Each expects c1 at version 2: the first transaction stores both of its events, every
    other finds a version taken (in the store or its transaction), reloads, and is refused."""
    await opened(s, "c1", balance=100)

    def transfer(to: str) -> list[AppendItem]:
        return [item(to, "AccountOpened", owner="c"), item("c1", "MoneyWithdrawn", 2, amount=10)]

    answers = await asyncio.gather(
        *(s.sync.append_many(transfer(f"c-to-{i}"), META) for i in range(6)),
        return_exceptions=True,
    )
    stored = [i for i, a in enumerate(answers) if not isinstance(a, BaseException)]
    refused = [a for a in answers if isinstance(a, RefusedItem)]
    assert len(stored) == 1 and len(refused) == 5, answers
    assert all(r.index == 1 and isinstance(r.error, WrongExpectedVersion) for r in refused)
    assert await versions(s, "c1") == [[1, 2, 3]]
    assert [len(v) for v in await versions(s, *(f"c-to-{i}" for i in range(6)))] == [
        1 if i in stored else 0 for i in range(6)
    ]


@pytest.fixture
async def on_memory() -> AsyncIterator[tuple[Runtime, MemoryAdapters]]:
    """Sync mode on the memory adapters: its store holds appends across aggregates while
    ``faults.hold(on="append_atomically")`` is on (and lets every other call through), its
    producer counts its calls."""
    memory = memory_adapters()
    runtime = await Runtime.start(
        Settings(topic_prefix="m.", kafka_timeout_ms=100), roles=("commands",),
        domains=Domains([ACCOUNT]), adapters=memory.adapters(),
    )  # fmt: skip
    try:
        yield runtime, memory
    finally:
        await runtime.stop()


@pytest.fixture
def held(on_memory: tuple[Runtime, MemoryAdapters]) -> tuple[Runtime, MemoryEventStore]:
    return on_memory[0], on_memory[1].stores.events


async def test_the_events_stored_together_are_published_in_one_produce(
    on_memory: tuple[Runtime, MemoryAdapters],
) -> None:
    runtime, memory = on_memory
    producer, topic = memory.stream.produced, runtime.names.stored
    produces = producer.faults.calls["send"]
    items = [item(f"p{i}", "AccountOpened", owner="p") for i in range(5)]
    stored = await runtime.sync.append_many(items, META)
    assert producer.faults.calls["send"] == produces + 1
    assert [decode(r.value) for r in producer.records(topic)] == list(stored.events)


async def taken_meanwhile(
    runtime: Runtime, store: MemoryEventStore, items: list[AppendItem], taken: str
) -> asyncio.Task[SyncResults]:
    """``items`` appended, held at the store until a single append took ``taken``'s next
    version; the task of the append across aggregates, released."""
    store.faults.hold(on="append_atomically")
    many = asyncio.create_task(runtime.sync.append_many(items, META))
    await wait_for(lambda: store.faults.held > 0, timeout_s=5, what="the held transaction")
    await runtime.sync.append(ACCOUNT, taken, "MoneyDeposited", {"amount": 2}, META)
    store.faults.release()
    return many


async def test_a_version_taken_between_load_and_store_is_decided_again(
    held: tuple[Runtime, MemoryEventStore],
) -> None:
    """The store refuses the whole transaction (h3's version 2 was taken meanwhile): nothing
    is stored, every aggregate is loaded again and each item judged again; h3's lands at 3."""
    runtime, store = held
    await runtime.sync.append(ACCOUNT, "h3", "AccountOpened", {"owner": "h"}, META)
    items = [item("h1", "AccountOpened", owner="h"), item("h2", "AccountOpened", owner="h"),
             item("h3", "MoneyDeposited", amount=1)]  # fmt: skip
    moved = await (await taken_meanwhile(runtime, store, items, "h3"))
    assert [(e.aggregate_id, e.version) for e in moved.events] == [("h1", 1), ("h2", 1), ("h3", 3)]
    h3 = await runtime.events.select(("account", "h3"))
    assert [e.data.get("amount") for e in h3] == [None, 2, 1]


async def test_with_an_expectation_a_version_taken_meanwhile_refuses_it(
    held: tuple[Runtime, MemoryEventStore],
) -> None:
    runtime, store = held
    await runtime.sync.append(ACCOUNT, "k3", "AccountOpened", {"owner": "k"}, META)
    items = [item("k1", "AccountOpened", owner="k"), item("k3", "MoneyDeposited", 1, amount=1)]
    with pytest.raises(RefusedItem) as caught:
        await (await taken_meanwhile(runtime, store, items, "k3"))
    error = caught.value.error
    assert caught.value.index == 1 and isinstance(error, WrongExpectedVersion)
    assert (error.expected, error.current) == (1, 2)
    assert await runtime.events.select(("account", "k1")) == []
