"""The core every event store implements (``EventStore``: ``EventAppend``, ``EventSelect``,
``EventLookup``), on every backend of ``backends.py``: ordered appends, unique id and version,
reads with every filter, the lookups, and a store that does not answer."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.waiting import within
from topics.envelope import new_event, utc_now
from topics.errors import StoreUnavailable
from workers.ports import AppendConflict, Head

from .backends import Backend, history


async def test_append_then_read_in_version_order(backend: Backend) -> None:
    events = backend.events
    written = history("o1", 5)
    await events.append(written)
    assert await events.select(("order", "o1")) == written
    assert await events.select(("order", "o1"), after=2, limit=2) == written[2:4]
    assert await events.select(("order", "o1"), before=4) == written[:3]
    assert await events.select(("order", "o1"), after=1, before=4) == written[1:3]
    assert await events.select(("order", "o1"), after=5) == []
    assert await events.select(("order", "nobody")) == []
    heads = await events.heads([("order", "o1"), ("order", "nobody")])
    assert heads == {("order", "o1"): Head(5, written[-1].id, written[-1].type)}
    assert await events.select(("order", "o1"), desc=True, limit=1) == written[-1:]
    assert await events.select(("order", "nobody"), desc=True, limit=1) == []
    assert await events.find([written[1].id, "not-there"]) == {written[1].id: written[1]}
    assert await events.find([]) == {} and await events.heads([]) == {}


async def test_appends_out_of_order_are_read_in_version_order(backend: Backend) -> None:
    written = history("o1", 6)
    shuffled = written[:]
    random.Random(3).shuffle(shuffled)
    for event in shuffled:
        await backend.events.append([event])
    assert await backend.events.select(("order", "o1")) == written


async def test_no_limit_reads_every_event_and_a_limit_counts_from_the_end_read(
    backend: Backend,
) -> None:
    written = history("l1", 4)
    await backend.events.append(written)
    ref = ("order", "l1")
    assert await backend.events.select(ref, limit=None) == written
    assert await backend.events.select(ref, limit=9) == written
    assert await backend.events.select(ref, limit=1) == written[:1]
    assert await backend.events.select(ref, desc=True, limit=1) == written[-1:]


async def test_as_of_reads_events_up_to_a_moment(backend: Backend) -> None:
    events = backend.events
    now = utc_now()
    written = [
        new_event("order", "t1", "OrderPaid", {}, version=v, occurred_at=now + timedelta(seconds=v))
        for v in (1, 2, 3)
    ]
    await events.append(written)
    assert await events.select(("order", "t1"), as_of=now + timedelta(seconds=2)) == written[:2]
    assert await events.select(("order", "t1"), as_of=now) == []
    # A time without a zone is taken as UTC (PyMongo's rule, kept by the memory store).
    naive = (now + timedelta(seconds=1)).replace(tzinfo=None)
    assert await events.select(("order", "t1"), as_of=naive) == written[:1]
    late = now + timedelta(seconds=9)
    assert await events.select(("order", "t1"), as_of=late, before=3, after=1) == [written[1]]
    by_then = now + timedelta(seconds=2)
    assert await events.select(("order", "t1"), as_of=by_then, desc=True, limit=1) == [written[1]]


async def test_times_are_kept_to_the_millisecond_in_utc(backend: Backend) -> None:
    precise = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    event = new_event("order", "ms", "OrderPaid", {}, version=1, occurred_at=precise)
    await backend.events.append([event])
    [stored] = await backend.events.select(("order", "ms"))
    assert stored.occurred_at == precise.replace(microsecond=123000)
    assert stored.occurred_at.tzinfo == UTC and stored == replace(
        event, occurred_at=stored.occurred_at
    )
    # as_of compares at the same precision: the event at .123456 happened "by" .123999.
    moment = precise.replace(microsecond=123999)
    assert await backend.events.select(("order", "ms"), as_of=moment) == [stored]


async def test_readers_get_copies_and_tuples_come_back_as_lists(backend: Backend) -> None:
    event = new_event("order", "c1", "OrderPlaced", {"items": [{"sku": "a"}]}, version=1)
    await backend.events.append([replace(event, data={"items": ({"sku": "a"},)})])
    [first] = await backend.events.select(("order", "c1"))
    assert first.data == {"items": [{"sku": "a"}]}
    first.data["items"].append({"sku": "mutated by a reader"})
    assert await backend.events.select(("order", "c1")) == [event]


async def test_a_taken_version_stops_the_append_where_it_conflicts(backend: Backend) -> None:
    events = backend.events
    await events.append(history("o2", 2))
    batch = [*history("o3", 2), *history("o2", 2, start=2)]  # o2 v2 is taken
    with pytest.raises(AppendConflict) as caught:
        await events.append(batch)
    assert (
        caught.value.inserted == 2 and caught.value.failed == batch[2] and not caught.value.id_taken
    )
    assert caught.value.retriable
    assert "another writer appended first" in str(caught.value)
    assert "order o2: version 2 is already stored" in str(caught.value)
    assert [e.version for e in await events.select(("order", "o2"))] == [1, 2]
    assert len(await events.select(("order", "o3"))) == 2  # the events before the conflict landed


async def test_a_redelivered_event_is_reported_as_such(backend: Backend) -> None:
    events = backend.events
    [first] = history("o4", 1)
    await events.append([first])
    with pytest.raises(AppendConflict) as caught:
        await events.append([first])
    assert caught.value.id_taken and caught.value.inserted == 0
    assert "redelivered" in str(caught.value) and first.id in str(caught.value)


async def test_an_event_twice_in_one_batch_stops_at_its_second_copy(backend: Backend) -> None:
    [event] = history("o5", 1)
    with pytest.raises(AppendConflict) as caught:
        await backend.events.append([event, event])
    assert (caught.value.inserted, caught.value.id_taken) == (1, True)
    assert await backend.events.select(("order", "o5")) == [event]


async def test_two_events_with_one_version_in_one_batch_keep_the_first(backend: Backend) -> None:
    a, b = (new_event("order", "o6", "OrderPaid", {"who": who}, version=1) for who in "ab")
    with pytest.raises(AppendConflict) as caught:
        await backend.events.append([a, b])
    assert (caught.value.inserted, caught.value.failed, caught.value.id_taken) == (1, b, False)
    assert await backend.events.select(("order", "o6")) == [a]


async def test_a_taken_id_under_another_version_or_aggregate_is_a_redelivery(
    backend: Backend,
) -> None:
    [event] = history("o7", 1)
    await backend.events.append([event])
    for moved in (replace(event, version=2), replace(event, aggregate_id="o8")):
        with pytest.raises(AppendConflict) as caught:
            await backend.events.append([moved])
        assert caught.value.id_taken and caught.value.failed == moved
    assert await backend.events.select(("order", "o8")) == []
    assert await backend.events.select(("order", "o7")) == [event]


async def test_unversioned_events_are_refused(backend: Backend) -> None:
    events = backend.events
    with pytest.raises(ValueError, match="no version"):
        await events.append([new_event("order", "o5", "OrderPaid", {})])
    assert await events.select(("order", "o5")) == []
    # One unversioned event refuses the whole batch before anything is written.
    good, unversioned = *history("o9", 1), new_event("order", "o9", "OrderPaid", {})
    with pytest.raises(ValueError, match=f"event {unversioned.id} has no version"):
        await events.append([good, unversioned])
    assert await events.select(("order", "o9")) == []
    await events.append([])  # nothing to do is not an error


async def test_concurrent_writers_of_one_version_exactly_one_wins(backend: Backend) -> None:
    events = backend.events
    contenders = [new_event("order", "o6", "OrderPaid", {"who": i}, version=1) for i in range(8)]
    results = await asyncio.gather(
        *(events.append([e]) for e in contenders), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, AppendConflict) for r in results if r is not None)
    [winner] = await events.select(("order", "o6"))
    assert winner == contenders[results.index(None)]


async def test_every_call_raises_store_unavailable_when_the_store_is_down(
    backend: Backend,
) -> None:
    kept = history("u1", 1)
    await backend.events.append(kept)
    ref = ("order", "u1")
    async with backend.outage() as down:
        events = down
        calls = {
            "append": events.append(history("u1", 1, start=2)),
            "select": events.select(ref),
            "select_desc": events.select(ref, desc=True, limit=5),
            "heads": events.heads([ref]),
            "find": events.find([kept[0].id]),
        }
        # All at once: each waits out the real store's timeout, so in turn they would add up.
        # Each is told within its client's bound (0.3 s), never a longer bound of one read
        # (versions: 120 s, for the read itself, not for reaching the store).
        results = await within(
            asyncio.gather(*calls.values(), return_exceptions=True),
            timeout_s=30,
            what="every call told",
        )
        for name, result in zip(calls, results, strict=True):
            assert isinstance(result, StoreUnavailable) and result.retriable, (name, result)
        # What needs no round trip answers without one, as before the outage.
        await events.append([])
        assert await events.find([]) == {}
        with pytest.raises(ValueError, match="no version"):  # bad input is told before the store
            await events.append([new_event("order", "u1", "OrderPaid", {})])
    assert await backend.events.select(ref) == kept  # the append during the outage wrote nothing
    await backend.events.append(history("u1", 1, start=2))
    assert (await backend.events.heads([ref]))[ref].version == 2


async def test_desc_pages_backwards_newest_first(backend: Backend) -> None:
    events = backend.events
    written = history("b1", 7)
    await events.append(written)
    ref = ("order", "b1")
    assert await events.select(ref, desc=True, limit=3) == written[:-4:-1]  # versions 7, 6, 5
    assert await events.select(ref, before=5, desc=True, limit=3) == [
        written[3],
        written[2],
        written[1],
    ]
    assert await events.select(ref, before=2, desc=True, limit=10) == [written[0]]
    assert await events.select(ref, before=1, desc=True, limit=10) == []
    assert await events.select(ref, before=100, desc=True, limit=1) == [written[-1]]
    assert await events.select(("order", "nobody"), desc=True, limit=5) == []
    # Paging to the start visits every event once, whatever the page size.
    seen, cursor = [], None
    while page := await events.select(ref, before=cursor, desc=True, limit=2):
        seen += page
        cursor = page[-1].version
    assert seen == written[::-1]
    assert await events.select(ref, after=4, desc=True) == written[:3:-1]  # 7, 6, 5: above 4
    assert await events.select(ref, after=2, before=6, desc=True, limit=2) == [
        written[4],
        written[3],
    ]
    assert await events.select(ref, after=5, before=6) == []  # an empty range
    assert await events.select(ref, after=6, before=3, desc=True) == []  # an inverted one


async def test_types_are_filtered_in_the_store_either_way(backend: Backend) -> None:
    kinds = ["OrderPlaced", "OrderPaid", "OrderShipped", "OrderPaid", "OrderPaid", "OrderShipped"]
    written = [
        new_event("order", "f1", kind, {"n": v}, version=v) for v, kind in enumerate(kinds, 1)
    ]
    await backend.events.append(written)
    ref = ("order", "f1")
    shipped = await backend.events.select(ref, desc=True, limit=10, types=["OrderShipped"])
    assert [e.version for e in shipped] == [6, 3]
    paid = await backend.events.select(ref, before=5, desc=True, limit=10, types=["OrderPaid", "X"])
    assert [e.version for e in paid] == [4, 2]
    assert await backend.events.select(ref, desc=True, limit=10, types=[]) == []
    forward = await backend.events.select(
        ref, after=2, limit=2, types=["OrderPaid", "OrderShipped"]
    )
    assert [e.version for e in forward] == [3, 4]
    assert [e.version for e in await backend.events.select(ref, types=["OrderPlaced"])] == [1]


@pytest.mark.parametrize(
    ("limit", "types", "problem"),
    [(0, None, "limit is 1 or more, or None for every event; got 0"), (-1, None, "got -1"),
     (True, None, "got True"), ("3", None, "got '3'"), (5, "OrderPaid", "got the string 'OrderPaid'"),
     (None, "OrderPaid", "got the string 'OrderPaid'")],
)  # fmt: skip
@pytest.mark.parametrize("desc", [False, True])
async def test_select_refuses_bad_arguments_before_asking_the_store(
    backend: Backend, limit: int, types: str | None, problem: str, desc: bool
) -> None:
    await backend.events.append(history("x", 2))
    with pytest.raises(ValueError, match=problem):
        await backend.events.select(("order", "x"), desc=desc, limit=limit, types=types)  # type: ignore[arg-type]
    async with backend.outage() as down:  # told before the store is asked: no StoreUnavailable
        with pytest.raises(ValueError, match=problem):
            await down.select(("order", "x"), desc=desc, limit=limit, types=types)  # type: ignore[arg-type]


async def test_schema_versions_round_trip_and_absent_means_one(backend: Backend) -> None:
    v1 = new_event("chat_room", "s1", "MessageDeleted", {"message_id": "m"}, version=1)
    v2 = new_event(
        "chat_room", "s1", "MessageDeleted", {"message_id": "m", "sender_id": "a"},
        version=2, schema_version=2,
    )  # fmt: skip
    await backend.events.append([v1, v2])
    back = await backend.events.select(("chat_room", "s1"))
    assert [e.schema_version for e in back] == [1, 2]
    assert back == [v1, v2]
    assert (await backend.events.find([v2.id]))[v2.id].schema_version == 2
    assert [
        e.schema_version
        for e in await backend.events.select(("chat_room", "s1"), desc=True, limit=2)
    ] == [2, 1]
