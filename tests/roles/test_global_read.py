"""The global read on the memory twins: pages that visit every stored event once, in each
partition's order, also while events are stored between them; filters; the read rule per event;
the scan bound; positions the log cannot continue from; the live subscription and its resume."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import pytest

from snapshot_rules.domain import Domains
from tests.e2e.owned_rooms import domains as owned_domains
from topics.envelope import Actor, Event, new_event
from topics.errors import InvalidInput, PositionOutdated, UnknownAggregateType
from workers.adapters.memory import MemoryStream
from workers.ports import Outgoing
from workers.roles.read.global_read import GlobalFilter, GlobalRead, MayRead, choose, read_rule
from workers.roles.read.live import LiveLimits

TOPIC = "fleet.events.stored"
KEY = secrets.token_bytes(32)
DOMAINS = owned_domains()
EVERYTHING = GlobalFilter()


async def as_they_are(events: Sequence[Event]) -> list[Event]:
    return list(events)


def reader(stream: MemoryStream, *, scan: int = 5000, domains: Domains = DOMAINS) -> GlobalRead:
    async def key() -> bytes:
        return KEY

    return GlobalRead(pages=stream.pages(), tail=stream, topic=TOPIC, key=key, domains=domains,
                      open_events=as_they_are, scan=scan)  # fmt: skip


def stored(kind: str, ident: str, version: int, event_type: str = "") -> Outgoing:
    types = {"order": "OrderPlaced", "account": "AccountOpened", "chat_room": "MessageSent"}
    return Outgoing.of(
        new_event(kind, ident, event_type or types[kind], {"n": version}, version=version)
    )


def histories(run: str, rounds: range) -> list[Outgoing]:
    """Versions ``rounds`` of three orders, two accounts and two rooms, interleaved."""
    refs = [("order", f"{run}-o{i}") for i in range(3)] + [("account", f"{run}-a{i}")
            for i in range(2)] + [("chat_room", f"{run}-r{i}") for i in range(2)]  # fmt: skip
    return [stored(kind, ident, v) for v in rounds for kind, ident in refs]


def everyone(aggregate_type: str, aggregate_id: str) -> bool:
    return True


async def walk(
    read: GlobalRead,
    after: str = "",
    *,
    limit: int = 7,
    keep: GlobalFilter = EVERYTHING,
    may_read: MayRead = everyone,
) -> tuple[list[Event], str]:
    """Every page from ``after`` until ``more`` is false: what they held, and the last ``next``."""
    got: list[Event] = []
    for _ in range(100):
        page = await read.page(after=after, limit=limit, keep=keep, may_read=may_read)
        got += page.events
        after = page.next
        if not page.more:
            return got, after
    raise AssertionError("the pages did not end")


async def test_pages_visit_every_event_once_in_order_while_more_are_stored() -> None:
    stream = MemoryStream(partitions={TOPIC: 3})
    await stream.produced.send_many(TOPIC, histories("a", range(1, 4)))
    read = reader(stream)
    got: list[Event] = []
    after = ""
    for round_ in range(4, 9):  # a page, then more stored, then the next page
        page = await read.page(after=after, limit=5, keep=EVERYTHING, may_read=everyone)
        assert len(page.events) == len(page.positions) <= 5 and page.more
        got += page.events
        after = page.next
        await stream.produced.send_many(TOPIC, histories("a", range(round_, round_ + 1)))
    rest, _ = await walk(read, after)
    got += rest
    refs = [(e.aggregate_type, e.aggregate_id, e.version) for e in got]
    assert len(refs) == len(set(refs)) == 7 * 8  # every event, once
    for kind, ident in {(k, i) for k, i, _ in refs}:
        assert [v for k, i, v in refs if (k, i) == (kind, ident)] == list(range(1, 9))


async def test_each_events_position_resumes_right_after_it() -> None:
    stream = MemoryStream(partitions={TOPIC: 3})
    await stream.produced.send_many(TOPIC, histories("b", range(1, 3)))
    read = reader(stream)
    page = await read.page(after="", limit=20, keep=EVERYTHING, may_read=everyone)
    assert not page.more and page.positions[-1] == page.next
    resumed, _ = await walk(read, page.positions[5])
    assert [e.id for e in resumed] == [e.id for e in page.events[6:]]
    assert await walk(read, page.next) == ([], page.next)  # at the end: nothing, and stays


async def test_filters_keep_their_events_and_one_that_keeps_nothing_answers_empty() -> None:
    stream = MemoryStream(partitions={TOPIC: 2})
    await stream.produced.send_many(TOPIC, histories("c", range(1, 3)))
    await stream.produced.send_many(TOPIC, [stored("order", "c-o0", 3, "OrderPaid")])
    read = reader(stream)
    orders, _ = await walk(read, keep=choose(DOMAINS, aggregate_types=["order"]))
    assert {e.aggregate_type for e in orders} == {"order"} and len(orders) == 7
    paid, _ = await walk(read, keep=choose(DOMAINS, event_types=["OrderPaid"]))
    assert [(e.aggregate_id, e.version) for e in paid] == [("c-o0", 3)]
    prefixed, _ = await walk(read, keep=choose(DOMAINS, id_prefix="c-a"))
    assert {e.aggregate_id for e in prefixed} == {"c-a0", "c-a1"}
    none = await read.page(after="", limit=10, keep=choose(DOMAINS, id_prefix="zz"),
                           may_read=everyone)  # fmt: skip
    assert (none.events, none.more) == ([], False)
    with pytest.raises(UnknownAggregateType, match="'ordre'"):
        choose(DOMAINS, aggregate_types=["ordre"])
    with pytest.raises(InvalidInput, match=r"'OrderPiad' is declared by none of order.*OrderPaid"):
        choose(DOMAINS, aggregate_types=["order"], event_types=["OrderPiad"])


async def test_the_read_rule_applies_per_event_and_the_position_moves_past_what_it_hides() -> None:
    stream = MemoryStream(partitions={TOPIC: 2})
    await stream.produced.send_many(TOPIC, [
        stored("chat_room", "alice-1", 1), stored("chat_room", "bob-1", 1),
        stored("order", "o-1", 1), stored("chat_room", "alice-1", 2), stored("chat_room", "bob-1", 2),
    ])  # fmt: skip
    read = reader(stream)
    alice = read_rule(DOMAINS, Actor("alice"))
    seen, end = await walk(read, limit=2, may_read=alice)
    assert sorted((e.aggregate_id, e.version) for e in seen) == [
        ("alice-1", 1), ("alice-1", 2), ("o-1", 1)]  # fmt: skip
    bob, _ = await walk(read, may_read=read_rule(DOMAINS, Actor("bob")))
    assert {e.aggregate_id for e in bob} == {"bob-1", "o-1"}
    after_all = await read.page(after=end, limit=5, keep=EVERYTHING, may_read=alice)
    assert (after_all.events, after_all.more) == ([], False)  # bob's events were read past
    open_door, _ = await walk(read, may_read=read_rule(DOMAINS, None))
    assert len(open_door) == 5


async def test_copies_and_what_is_no_stored_event_are_read_past() -> None:
    stream = MemoryStream(partitions={TOPIC: 1})
    await stream.produced.send_many(TOPIC, [
        stored("order", "o-1", 1), stored("order", "o-1", 1),  # a republished copy
        Outgoing(b"order:o-2", b"not an envelope"), stored("game", "g-1", 1, "Moved"),
        Outgoing.of(new_event("order", "o-3", "OrderPlaced", {})),  # no version: not stored
        stored("order", "o-1", 2),
    ])  # fmt: skip
    page = await reader(stream).page(after="", limit=10, keep=EVERYTHING, may_read=everyone)
    assert [(e.aggregate_id, e.version) for e in page.events] == [("o-1", 1), ("o-1", 2)]
    assert not page.more


async def test_a_page_reads_at_most_its_scan_and_says_more() -> None:
    stream = MemoryStream(partitions={TOPIC: 1})
    await stream.produced.send_many(TOPIC, histories("d", range(1, 41)))  # 280 records
    await stream.produced.send_many(TOPIC, [stored("order", "needle", 1)])
    read = reader(stream, scan=100)
    keep = choose(DOMAINS, id_prefix="needle")
    first = await read.page(after="", limit=10, keep=keep, may_read=everyone)
    assert (first.events, first.more) == ([], True)  # 100 records read, none kept
    found, _ = await walk(read, first.next, keep=keep)
    assert [e.aggregate_id for e in found] == ["needle"]


async def test_a_position_the_log_cannot_continue_from_is_outdated() -> None:
    stream = MemoryStream(partitions={TOPIC: 3})
    await stream.produced.send_many(TOPIC, histories("e", range(1, 3)))
    _, end = await walk(reader(stream))
    repartitioned = MemoryStream(partitions={TOPIC: 4})  # the same fleet's log, grown
    await repartitioned.produced.send_many(TOPIC, histories("e", range(1, 3)))
    with pytest.raises(PositionOutdated, match="had 3 partitions; it has 4 now"):
        await reader(repartitioned).page(after=end, limit=5, keep=EVERYTHING, may_read=everyone)
    recreated = MemoryStream(partitions={TOPIC: 3})  # emptied: the position is past its end
    with pytest.raises(PositionOutdated, match="read again from the beginning"):
        await reader(recreated).page(after=end, limit=5, keep=EVERYTHING, may_read=everyone)
    with pytest.raises(PositionOutdated):
        await reader(repartitioned).subscription(
            after=end, keep=EVERYTHING, may_read=everyone, limits=LiveLimits()
        )


async def test_a_subscription_gives_each_event_once_and_resumes_from_any_events_id() -> None:
    stream = MemoryStream(partitions={TOPIC: 3})
    await stream.produced.send_many(TOPIC, [stored("chat_room", "alice-1", 1),
                                            stored("chat_room", "bob-1", 1),
                                            stored("chat_room", "alice-1", 1)])  # fmt: skip
    read = reader(stream)
    limits = LiveLimits(heartbeat_s=0.05)
    alice = read_rule(DOMAINS, Actor("alice"))
    subscription = await read.subscription(after="", keep=EVERYTHING, may_read=alice,
                                           limits=limits)  # fmt: skip
    batches = subscription.batches()
    got: list[tuple[str, int | None, str]] = []
    while not subscription.live:
        batch = await anext(batches)
        got += [(e.aggregate_id, e.version, subscription.tokens[e.id]) for e in batch]
    await stream.produced.send_many(TOPIC, [stored("chat_room", "alice-1", 2),
                                            stored("chat_room", "alice-1", 3)])  # fmt: skip
    while len(got) < 3:
        batch = await anext(batches)
        got += [(e.aggregate_id, e.version, subscription.tokens[e.id]) for e in batch]
    await batches.aclose()
    assert [(a, v) for a, v, _ in got] == [("alice-1", 1), ("alice-1", 2), ("alice-1", 3)]
    resumed = await read.subscription(after=got[1][2], keep=EVERYTHING, may_read=alice,
                                      limits=limits)  # fmt: skip
    more = resumed.batches()
    later = [(e.aggregate_id, e.version) for e in await anext(more)]
    await more.aclose()
    assert later == [("alice-1", 3)]
    assert resumed.resume == {"after": resumed.given_out}
