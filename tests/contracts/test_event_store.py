"""The EventStore contract: ordered appends, unique id and version, reads with every filter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from topics.envelope import Event, new_event, utc_now
from topics.errors import StoreUnavailable
from workers.ports import AppendConflict, Head

from .conftest import Stores

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _drain(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def history(aggregate_id: str, n: int, *, start: int = 1, type: str = "order") -> list[Event]:
    return [
        new_event(type, aggregate_id, "OrderPaid", {"n": v}, version=v)
        for v in range(start, start + n)
    ]


async def test_append_then_read_in_version_order(stores: Stores) -> None:
    events = stores.events
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


async def test_appends_out_of_order_are_read_in_version_order(stores: Stores) -> None:
    written = history("o1", 6)
    shuffled = written[:]
    random.Random(3).shuffle(shuffled)
    for event in shuffled:
        await stores.events.append([event])
    assert await stores.events.select(("order", "o1")) == written


async def test_no_limit_reads_every_event_and_a_limit_counts_from_the_end_read(
    stores: Stores,
) -> None:
    written = history("l1", 4)
    await stores.events.append(written)
    ref = ("order", "l1")
    assert await stores.events.select(ref, limit=None) == written
    assert await stores.events.select(ref, limit=9) == written
    assert await stores.events.select(ref, limit=1) == written[:1]
    assert await stores.events.select(ref, desc=True, limit=1) == written[-1:]


async def test_as_of_reads_events_up_to_a_moment(stores: Stores) -> None:
    events = stores.events
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


async def test_times_are_kept_to_the_millisecond_in_utc(stores: Stores) -> None:
    precise = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    event = new_event("order", "ms", "OrderPaid", {}, version=1, occurred_at=precise)
    await stores.events.append([event])
    [stored] = await stores.events.select(("order", "ms"))
    assert stored.occurred_at == precise.replace(microsecond=123000)
    assert stored.occurred_at.tzinfo == UTC and stored == replace(
        event, occurred_at=stored.occurred_at
    )
    # as_of compares at the same precision: the event at .123456 happened "by" .123999.
    moment = precise.replace(microsecond=123999)
    assert await stores.events.select(("order", "ms"), as_of=moment) == [stored]


async def test_readers_get_copies_and_tuples_come_back_as_lists(stores: Stores) -> None:
    event = new_event("order", "c1", "OrderPlaced", {"items": [{"sku": "a"}]}, version=1)
    await stores.events.append([replace(event, data={"items": ({"sku": "a"},)})])
    [first] = await stores.events.select(("order", "c1"))
    assert first.data == {"items": [{"sku": "a"}]}
    first.data["items"].append({"sku": "mutated by a reader"})
    assert await stores.events.select(("order", "c1")) == [event]


async def test_a_taken_version_stops_the_append_where_it_conflicts(stores: Stores) -> None:
    events = stores.events
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


async def test_a_redelivered_event_is_reported_as_such(stores: Stores) -> None:
    events = stores.events
    [first] = history("o4", 1)
    await events.append([first])
    with pytest.raises(AppendConflict) as caught:
        await events.append([first])
    assert caught.value.id_taken and caught.value.inserted == 0
    assert "redelivered" in str(caught.value) and first.id in str(caught.value)


async def test_an_event_twice_in_one_batch_stops_at_its_second_copy(stores: Stores) -> None:
    [event] = history("o5", 1)
    with pytest.raises(AppendConflict) as caught:
        await stores.events.append([event, event])
    assert (caught.value.inserted, caught.value.id_taken) == (1, True)
    assert await stores.events.select(("order", "o5")) == [event]


async def test_two_events_with_one_version_in_one_batch_keep_the_first(stores: Stores) -> None:
    a, b = (new_event("order", "o6", "OrderPaid", {"who": who}, version=1) for who in "ab")
    with pytest.raises(AppendConflict) as caught:
        await stores.events.append([a, b])
    assert (caught.value.inserted, caught.value.failed, caught.value.id_taken) == (1, b, False)
    assert await stores.events.select(("order", "o6")) == [a]


async def test_a_taken_id_under_another_version_or_aggregate_is_a_redelivery(
    stores: Stores,
) -> None:
    [event] = history("o7", 1)
    await stores.events.append([event])
    for moved in (replace(event, version=2), replace(event, aggregate_id="o8")):
        with pytest.raises(AppendConflict) as caught:
            await stores.events.append([moved])
        assert caught.value.id_taken and caught.value.failed == moved
    assert await stores.events.select(("order", "o8")) == []
    assert await stores.events.select(("order", "o7")) == [event]


async def test_unversioned_events_are_refused(stores: Stores) -> None:
    events = stores.events
    with pytest.raises(ValueError, match="no version"):
        await events.append([new_event("order", "o5", "OrderPaid", {})])
    assert await events.select(("order", "o5")) == []
    # One unversioned event refuses the whole batch before anything is written.
    good, unversioned = *history("o9", 1), new_event("order", "o9", "OrderPaid", {})
    with pytest.raises(ValueError, match=f"event {unversioned.id} has no version"):
        await events.append([good, unversioned])
    assert await events.select(("order", "o9")) == []
    await events.append([])  # nothing to do is not an error


async def test_concurrent_writers_of_one_version_exactly_one_wins(stores: Stores) -> None:
    events = stores.events
    contenders = [new_event("order", "o6", "OrderPaid", {"who": i}, version=1) for i in range(8)]
    results = await asyncio.gather(
        *(events.append([e]) for e in contenders), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, AppendConflict) for r in results if r is not None)
    [winner] = await events.select(("order", "o6"))
    assert winner == contenders[results.index(None)]


async def test_scan_count_and_versions_cover_the_asked_types_in_order(stores: Stores) -> None:
    # More than one batch of a cursor (101), appended in a scrambled order.
    written = [
        *(e for i in range(30) for e in history(f"a{i:02}", 7, type="order")),
        *(e for i in range(5) for e in history(f"c{i}", 3, type="chat_room")),
        *history("x", 2, type="account"),
    ]
    scrambled = written[:]
    random.Random(5).shuffle(scrambled)
    for start in range(0, len(scrambled), 20):
        await stores.events.append(scrambled[start : start + 20])
    wanted = ["order", "chat_room"]
    expected = sorted(
        (e for e in written if e.aggregate_type in wanted),
        key=lambda e: (e.aggregate_type, e.aggregate_id, e.version),
    )
    assert [e async for e in stores.events.scan(wanted)] == expected
    assert await stores.events.count(wanted) == len(expected) == 225
    assert await stores.events.count(["account"]) == 2
    versions = await stores.events.versions(wanted)
    assert len(versions) == 35 and versions[("order", "a07")] == 7
    assert versions[("chat_room", "c4")] == 3 and ("account", "x") not in versions
    assert [e async for e in stores.events.scan([])] == []
    assert await stores.events.count([]) == 0 and await stores.events.versions([]) == {}


async def test_pending_lists_flagged_events_until_cleared(stores: Stores) -> None:
    events = stores.events
    old = [
        new_event("order", agg, "OrderPaid", {}, version=v, occurred_at=T0 + timedelta(seconds=v))
        for agg in ("p2", "p1")
        for v in (1, 2)
    ]
    fresh = new_event(
        "order", "p3", "OrderPaid", {}, version=1, occurred_at=T0 + timedelta(hours=1)
    )
    await events.append(old, pending_publish=True)
    await events.append([fresh], pending_publish=True)
    await events.append(history("p0", 2))  # stored and published at once: never flagged
    cutoff = T0 + timedelta(minutes=1)
    by_aggregate = [old[2], old[3], old[0], old[1]]  # p1 before p2, each by version
    assert await events.pending(older_than=cutoff, limit=10) == by_aggregate
    assert await events.pending(older_than=cutoff, limit=3) == by_aggregate[:3]
    assert await events.pending(older_than=cutoff, limit=0) == by_aggregate  # 0: no limit
    assert await events.pending(older_than=T0 + timedelta(hours=2), limit=10) == [
        *by_aggregate,
        fresh,
    ]
    await events.clear_pending([old[2].id, old[3].id, "not-an-event"])
    assert await events.pending(older_than=cutoff, limit=10) == [old[0], old[1]]
    await events.clear_pending([])
    assert len(await events.select(("order", "p1"))) == 2  # clearing the flag keeps the event


async def test_every_call_raises_store_unavailable_when_the_store_is_down(
    stores: Stores,
) -> None:
    kept = history("u1", 1)
    await stores.events.append(kept)
    ref = ("order", "u1")
    async with stores.outage() as down:
        events = down.events
        calls = {
            "append": events.append(history("u1", 1, start=2)),
            "select": events.select(ref),
            "select_desc": events.select(ref, desc=True, limit=5),
            "heads": events.heads([ref]),
            "find": events.find([kept[0].id]),
            "count": events.count(["order"]),
            "versions": events.versions(["order"]),
            "pending": events.pending(older_than=utc_now(), limit=5),
            "clear_pending": events.clear_pending([kept[0].id]),
        }
        calls["scan"] = _drain(events.scan(["order"]))
        # All at once: each waits out the real store's timeout, so in turn they would add up.
        # Each is told within its client's bound (0.3 s), never a longer bound of one read
        # (versions: 120 s, for the read itself, not for reaching the store).
        async with asyncio.timeout(30):
            results = await asyncio.gather(*calls.values(), return_exceptions=True)
        for name, result in zip(calls, results, strict=True):
            assert isinstance(result, StoreUnavailable) and result.retriable, (name, result)
        # What needs no round trip answers without one, as before the outage.
        await events.append([])
        assert await events.find([]) == {}
        with pytest.raises(ValueError, match="no version"):  # bad input is told before the store
            await events.append([new_event("order", "u1", "OrderPaid", {})])
    assert await stores.events.select(ref) == kept  # the append during the outage wrote nothing
    await stores.events.append(history("u1", 1, start=2))
    assert (await stores.events.heads([ref]))[ref].version == 2


async def test_desc_pages_backwards_newest_first(stores: Stores) -> None:
    events = stores.events
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


async def test_types_are_filtered_in_the_store_either_way(stores: Stores) -> None:
    kinds = ["OrderPlaced", "OrderPaid", "OrderShipped", "OrderPaid", "OrderPaid", "OrderShipped"]
    written = [
        new_event("order", "f1", kind, {"n": v}, version=v) for v, kind in enumerate(kinds, 1)
    ]
    await stores.events.append(written)
    ref = ("order", "f1")
    shipped = await stores.events.select(ref, desc=True, limit=10, types=["OrderShipped"])
    assert [e.version for e in shipped] == [6, 3]
    paid = await stores.events.select(ref, before=5, desc=True, limit=10, types=["OrderPaid", "X"])
    assert [e.version for e in paid] == [4, 2]
    assert await stores.events.select(ref, desc=True, limit=10, types=[]) == []
    forward = await stores.events.select(ref, after=2, limit=2, types=["OrderPaid", "OrderShipped"])
    assert [e.version for e in forward] == [3, 4]
    assert [e.version for e in await stores.events.select(ref, types=["OrderPlaced"])] == [1]


@pytest.mark.parametrize(
    ("limit", "types", "problem"),
    [(0, None, "limit is 1 or more, or None for every event; got 0"), (-1, None, "got -1"),
     (True, None, "got True"), ("3", None, "got '3'"), (5, "OrderPaid", "got the string 'OrderPaid'"),
     (None, "OrderPaid", "got the string 'OrderPaid'")],
)  # fmt: skip
@pytest.mark.parametrize("desc", [False, True])
async def test_select_refuses_bad_arguments_before_asking_the_store(
    stores: Stores, limit: int, types: str | None, problem: str, desc: bool
) -> None:
    await stores.events.append(history("x", 2))
    with pytest.raises(ValueError, match=problem):
        await stores.events.select(("order", "x"), desc=desc, limit=limit, types=types)  # type: ignore[arg-type]
    async with stores.outage() as down:  # told before the store is asked: no StoreUnavailable
        with pytest.raises(ValueError, match=problem):
            await down.events.select(("order", "x"), desc=desc, limit=limit, types=types)  # type: ignore[arg-type]


async def test_schema_versions_round_trip_and_absent_means_one(stores: Stores) -> None:
    v1 = new_event("chat_room", "s1", "MessageDeleted", {"message_id": "m"}, version=1)
    v2 = new_event(
        "chat_room", "s1", "MessageDeleted", {"message_id": "m", "sender_id": "a"},
        version=2, schema_version=2,
    )  # fmt: skip
    await stores.events.append([v1, v2])
    back = await stores.events.select(("chat_room", "s1"))
    assert [e.schema_version for e in back] == [1, 2]
    assert back == [v1, v2]
    assert (await stores.events.find([v2.id]))[v2.id].schema_version == 2
    assert [
        e.schema_version
        for e in await stores.events.select(("chat_room", "s1"), desc=True, limit=2)
    ] == [2, 1]


async def test_moving_out_inserts_what_is_missing_and_removes_a_prefix(stores: Stores) -> None:
    events = stores.events
    written = history("mv", 10)
    assert await events.insert_missing(written[:4]) == 4
    assert await events.insert_missing(written) == 6  # again, half done before: the rest only
    assert await events.insert_missing(written) == 0
    assert await events.insert_missing([]) == 0
    assert await events.select(("order", "mv")) == written
    await events.append(history("other", 3))
    assert await events.remove_through(("order", "mv"), 6) == 6
    assert await events.select(("order", "mv")) == written[6:]
    assert await events.remove_through(("order", "mv"), 6) == 0
    assert len(await events.select(("order", "other"))) == 3  # another aggregate is untouched
    assert await events.find([written[0].id, written[9].id]) == {written[9].id: written[9]}
    async with stores.outage() as down:
        with pytest.raises(StoreUnavailable):
            await down.events.remove_through(("order", "mv"), 9)
