"""The appender on the memory adapters: the store judges, numbers, waits for predecessors, refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from snapshot_rules.domain import Domains
from tests.roles.appending import (
    DATA,
    DLQ,
    EVENTS,
    REPLIES,
    STORED,
    WAIT_S,
    Rig,
    make_rig,
    order,
    whole,
)
from tests.waiting import wait_for, within
from topics.envelope import NEW_AGGREGATE, Event, new_event
from topics.errors import StoreUnavailable
from workers.examples.domains.order import ORDER
from workers.ports import MarkRequest, Record, Rejection
from workers.roles.append.appender import Appender
from workers.roles.append.book import AppenderConfig
from workers.roles.append.given import AppendStores, Replies
from workers.roles.deadletter import DeadLetters
from workers.roles.outcomes import decode as decode_outcome
from workers.runtime.answers import reply_of


async def archived(aggregate_type: str) -> bool:
    """A store whose archive holds events of every type: no aggregate is whole in it."""
    return False


@pytest.fixture(params=["heads read", "new ones unread"])
def rig(request: pytest.FixtureRequest) -> Rig:
    """Every test twice: the appender reads each head it does not know; and it decides an
    aggregate that its events only start without reading it (``whole_in_hot``)."""
    return make_rig(whole if request.param == "new ones unread" else None)


def chain(*kinds: str, oid: str = "o1") -> list[Event]:
    events: list[Event] = []
    for kind in kinds:
        events.append(order(kind, events[-1].id if events else NEW_AGGREGATE, oid=oid))
    return events


async def test_a_validated_chain_is_stored_numbered_and_published_in_order(rig: Rig) -> None:
    placed, paid, shipped = chain("OrderPlaced", "OrderPaid", "OrderShipped")
    decided = await rig.take([placed, paid, shipped])
    assert len(decided) == 3
    expected = [("OrderPlaced", 1), ("OrderPaid", 2), ("OrderShipped", 3)]
    assert await rig.history() == expected and rig.published() == expected


async def test_a_successor_produced_first_waits_and_is_stored_after_its_predecessor(
    rig: Rig,
) -> None:
    placed, paid, shipped = chain("OrderPlaced", "OrderPaid", "OrderShipped")
    await rig.take([placed])
    # Two commands processes: `shipped` was validated after `paid` but reached Kafka first.
    decided = await rig.take([shipped])
    assert decided == [] and rig.appender.waiting() == 1  # its record stays unacked
    rig.clock.now += 0.3
    decided = await rig.take([paid])
    assert {r.offset for r in decided} == {1, 2}  # both decided now: both may be acked
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2), ("OrderShipped", 3)]
    waits = rig.metrics.registry.get_sample_value(
        "eventfleet_append_waits_total", {"outcome": "arrived"}
    )
    assert waits == 1


async def test_a_successor_of_a_predecessor_that_never_comes_is_refused_at_its_deadline(
    rig: Rig,
) -> None:
    placed, paid, shipped = chain("OrderPlaced", "OrderPaid", "OrderShipped")
    await rig.take([placed])
    await rig.marker.check_and_mark(
        MarkRequest(
            "order:o1", "OrderShipped", shipped.id, ["OrderPaid"], fallback=f"OrderPaid|{paid.id}"
        )
    )
    assert await rig.take([shipped]) == []
    rig.clock.now += WAIT_S - 0.01
    assert await rig.appender.expire() == []  # not yet
    rig.clock.now += 0.02
    decided = await rig.appender.expire()
    assert [r.offset for r in decided] == [1]
    assert await rig.history() == [("OrderPlaced", 1)]  # never a history the domain forbids
    refusal = (await rig.rejections.find([shipped.id]))[shipped.id]
    assert refusal.reason == "transition_rejected_at_store"
    assert "OrderShipped may not follow OrderPlaced" in refusal.message
    [letter] = rig.producer.records(DLQ)
    assert dict(letter.headers)["dlq_reason"] == b"transition_rejected_at_store"
    [reply] = rig.producer.records(REPLIES)
    assert orjson.loads(reply.value)["body"]["event_id"] == shipped.id
    # The mark named the refused event: it now names the stored head again.
    assert await rig.marker.peek("order:o1") == ("OrderPlaced", placed.id)


async def test_ticks_have_work_only_while_something_waits_or_a_round_is_unfinished(
    rig: Rig,
) -> None:
    """An idle appender skips its ticks (``holds_work``): one that skipped them while an event
    waited would never judge it; one that skipped them after a failed round would keep its
    records from the ledger."""
    assert not rig.appender.holds_work()
    placed, _paid, shipped = chain("OrderPlaced", "OrderPaid", "OrderShipped")
    await rig.take([placed])
    assert not rig.appender.holds_work()
    assert await rig.take([shipped]) == []  # waits for its predecessor
    assert rig.appender.holds_work()
    rig.clock.now += WAIT_S + 0.01
    assert len(await rig.appender.expire()) == 1
    assert not rig.appender.holds_work()
    letter = order("OrderPaid", placed.id)
    rig.producer.fail_next(1, on=STORED)  # stored, then events.stored does not acknowledge
    with pytest.raises(Exception, match="did not answer"):
        await rig.appender.handle(rig.records([letter]))
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2)]
    assert rig.appender.holds_work()  # the round's publishing is unfinished
    assert [r.offset for r in await rig.appender.expire()] == [2]  # a tick finishes it
    assert rig.published()[-1] == ("OrderPaid", 2)
    assert not rig.appender.holds_work()


async def test_a_successor_past_offsets_not_yet_received_waits_for_them_past_its_deadline(
    rig: Rig,
) -> None:
    """Its predecessor was dropped on the way to the agent and is being redelivered: judged on
    the head at its deadline, the successor would be refused although the history is valid."""
    placed, paid = chain("OrderPlaced", "OrderPaid")
    received = {0}  # offsets that reached the agent; 1 (paid) was dropped on its way
    rig.appender.hold_past_gaps(
        lambda partition, offset: any(o not in received for o in range(offset))
    )
    [placed_record, paid_record] = rig.records([placed, paid])
    shipped = new_event("order", "o1", "OrderShipped", DATA["OrderShipped"], after=paid.id)
    [shipped_record] = rig.records([shipped])
    await rig.appender.handle([placed_record])
    received.add(2)
    assert await rig.appender.handle([shipped_record]) == []
    for _ in range(3):  # long past its deadline: still waiting, nothing refused
        rig.clock.now += WAIT_S
        assert await rig.appender.expire() == []
    assert await rig.rejections.find([shipped.id]) == {}
    received.add(1)  # the gap closes: the predecessor is redelivered
    decided = await rig.appender.handle([paid_record])
    assert sorted(r.offset for r in decided) == [1, 2]
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2), ("OrderShipped", 3)]


async def test_data_the_domain_refuses_is_never_stored(rig: Rig) -> None:
    empty = new_event("order", "o1", "OrderPlaced", {}, after=NEW_AGGREGATE)
    decided = await rig.take([empty])
    assert len(decided) == 1 and await rig.history() == []
    refusal = (await rig.rejections.find([empty.id]))[empty.id]
    assert refusal.reason == "invalid_data" and "data.items is required" in refusal.message
    assert orjson.loads(rig.producer.records(REPLIES)[0].value)["status"] == 422


async def test_an_event_validated_against_a_stale_store_is_judged_on_the_real_head(
    rig: Rig,
) -> None:
    placed, paid = chain("OrderPlaced", "OrderPaid")
    await rig.take([placed, paid])
    # The mark was lost; the fallback read the store before `paid` was stored.
    stale = order("OrderPaid", placed.id)
    await rig.take([stale])
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2)]
    assert stale.id in await rig.rejections.find([stale.id])


async def test_a_redelivered_stored_event_is_republished_not_judged_again(rig: Rig) -> None:
    placed, paid, shipped = chain("OrderPlaced", "OrderPaid", "OrderShipped")
    await rig.take([placed, paid, shipped])
    fresh = Appender(  # a restarted appender: no memory of what it stored
        stores=AppendStores(rig.store, rig.rejections),
        replies=Replies(rig.producer, reply_of),
        dead_letters=DeadLetters(rig.producer, topic=DLQ, role="appender", metrics=rig.metrics),
        domains=Domains([ORDER]),
        metrics=rig.metrics,
        config=AppenderConfig(STORED, REPLIES, max_event_bytes=100_000, wait_s=WAIT_S),
        clock=rig.clock,
    )
    decided = await fresh.handle(rig.records([placed, paid, shipped]))
    assert len(decided) == 3
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2), ("OrderShipped", 3)]
    assert await rig.rejections.find([placed.id, paid.id, shipped.id]) == {}
    assert rig.published()[-3:] == [("OrderPlaced", 1), ("OrderPaid", 2), ("OrderShipped", 3)]


async def test_a_redelivered_refused_event_stays_refused(rig: Rig) -> None:
    placed = order("OrderPlaced", NEW_AGGREGATE)
    wrong = order("OrderShipped", placed.id)
    await rig.take([placed, wrong])
    paid = order("OrderPaid", placed.id)
    await rig.take([paid])
    await rig.take([wrong])  # redelivered after a crash: the head moved, the verdict does not
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2)]


async def test_a_store_that_is_down_leaves_the_batch_undecided_and_loses_nothing(rig: Rig) -> None:
    placed, paid = chain("OrderPlaced", "OrderPaid")
    records = rig.records([placed, paid])
    rig.store.fail_next(1, on="append")
    with pytest.raises(StoreUnavailable):
        await rig.appender.handle(records)
    assert await rig.history() == []
    decided = await rig.appender.handle(records)  # the agent retries the whole batch
    assert len(decided) == 2
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2)]


async def test_a_version_taken_by_another_writer_is_judged_again_on_the_new_head(rig: Rig) -> None:
    placed = order("OrderPlaced", NEW_AGGREGATE)
    await rig.take([placed])
    # Another appender (after a rebalance) stored OrderPaid at version 2 behind our back.
    theirs = order("OrderPaid", placed.id)
    await rig.store.append([theirs.with_version(2)])
    ours = order("OrderPaid", placed.id)
    await rig.take([ours])
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2)]
    assert ours.id in await rig.rejections.find([ours.id])


async def test_poison_and_foreign_events_are_dead_lettered_and_decided(rig: Rig) -> None:
    sync_event = new_event("account", "a1", "AccountOpened", {"owner": "x"})
    versioned = order("OrderPlaced", NEW_AGGREGATE).with_version(3)
    bad = Record(EVENTS, 0, 99, b"k", b"{not json")
    decided = await rig.appender.handle([*rig.records([sync_event, versioned]), bad])
    assert len(decided) == 3 and await rig.history() == []
    reasons = sorted(dict(r.headers)["dlq_reason"] for r in rig.producer.records(DLQ))
    assert reasons == [b"already_versioned", b"invalid", b"undecodable"]


async def test_revoked_partitions_drop_their_waiting_events(rig: Rig) -> None:
    placed, _paid, shipped = chain("OrderPlaced", "OrderPaid", "OrderShipped")
    await rig.take([placed])
    await rig.appender.handle(rig.records([shipped], partition=2))
    assert rig.appender.waiting() == 1
    rig.appender.forget({2})
    assert rig.appender.waiting() == 0  # the partition's next owner gets the record again


async def test_a_revocation_while_a_batch_is_decided_applies_after_the_batch(rig: Rig) -> None:
    """A rebalance comes at any await: the batch in flight finishes on its own state (dropping
    its queues under it failed it with a KeyError and stopped the process), then the revoked
    partition's waiting events go."""
    placed, paid, shipped = chain("OrderPlaced", "OrderPaid", "OrderShipped")
    other_placed, _other_paid, other_shipped = chain(
        "OrderPlaced", "OrderPaid", "OrderShipped", oid="o2"
    )
    await rig.take([placed, other_placed])
    rig.appender.forget(set())  # a new assignment: the next batch reads the heads again
    reads = rig.store.faults.calls["heads"]
    rig.store.hold(on="heads")
    batch = asyncio.create_task(
        rig.appender.handle(rig.records([paid, other_shipped], partition=2))
    )
    await wait_for(lambda: rig.store.faults.calls["heads"] > reads, timeout_s=5,
                   what="the batch reading heads")  # fmt: skip
    rig.appender.forget({2})  # revoked while the batch waits on the store
    rig.store.release()
    decided = await within(batch, timeout_s=5, what="the batch decided")
    assert [r.offset for r in decided] == [2]  # stored; o2's successor still waited
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2)]
    assert rig.appender.waiting() == 0  # then the revocation: its next owner reads it again
    await rig.take([shipped])
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2), ("OrderShipped", 3)]


async def test_a_batch_retried_after_publishing_failed_republishes_what_it_stored(rig: Rig) -> None:
    placed, paid = chain("OrderPlaced", "OrderPaid")
    records = rig.records([placed, paid])
    rig.producer.fail_next(1, on=STORED)  # stored, then events.stored does not acknowledge
    with pytest.raises(Exception, match="did not answer"):
        await rig.appender.handle(records)
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2)]
    decided = await rig.appender.handle(records)  # the agent retries the whole batch
    assert len(decided) == 2
    assert rig.published() == [("OrderPlaced", 1), ("OrderPaid", 2)]  # not refused: stored
    assert await rig.rejections.find([placed.id, paid.id]) == {}


async def test_storing_leaves_marks_alone_notes_new_aggregates_and_a_refusal_is_remembered(
    rig: Rig,
) -> None:
    """Marks are never rolled back on a timer; a refused command's retry learns the refusal."""
    placed = order("OrderPlaced", NEW_AGGREGATE)
    await rig.marker.check_and_mark(
        MarkRequest("order:o1", "OrderPlaced", placed.id, ["none"], fallback="-")
    )
    shipped = order("OrderShipped", placed.id, command="ship-1")
    await rig.take([placed, shipped])  # shipped before it was paid: refused at the store
    rig.clock.now += 3600
    assert await rig.marker.peek("order:o1") == ("OrderPlaced", placed.id)
    assert "order:o1" in rig.marker._noted  # the filter knows it now
    record = await rig.memory.recall("order:o1", "ship-1")
    assert record is not None and record.state == "answered"
    assert decode_outcome(record.answer).code == "transition_rejected_at_store"
    reply = orjson.loads(rig.producer.records(REPLIES)[0].value)
    assert (reply["status"], reply["body"]["error"]) == (409, "transition_rejected_at_store")


async def test_a_refusal_becomes_visible_only_after_the_mark_names_the_stored_head_again(
    rig: Rig,
) -> None:
    """A client that reads the refusal (outcome, reply) and sends the next event must be
    checked against the stored head, not against the mark of the event just refused."""
    placed = order("OrderPlaced", NEW_AGGREGATE)
    await rig.marker.check_and_mark(
        MarkRequest("order:o1", "OrderPlaced", placed.id, ["none"], fallback="-")
    )
    await rig.take([placed])
    shipped = order("OrderShipped", placed.id)  # a racing view let it through the marker
    marked = await rig.marker.check_and_mark(
        MarkRequest("order:o1", "OrderShipped", shipped.id, ["OrderPlaced"], fallback="-")
    )
    assert marked.status == "marked" and await rig.marker.peek("order:o1") == (
        "OrderShipped",
        shipped.id,
    )
    seen_when_recorded: list[tuple[str, str] | None] = []
    record = rig.rejections.record

    async def recording(rejections: Sequence[Rejection]) -> None:
        seen_when_recorded.append(await rig.marker.peek("order:o1"))
        await record(rejections)

    rig.rejections.record = recording  # type: ignore[method-assign]
    await rig.take([shipped])
    assert shipped.id in await rig.rejections.find([shipped.id])
    assert seen_when_recorded == [("OrderPlaced", placed.id)]


class CountingFinds:
    """Records every lookup the appender makes of stored events: (ids, aggregates)."""

    def __init__(self, rig: Rig) -> None:
        self.calls: list[tuple[int, int]] = []
        find = rig.store.find

        async def counting(ids: Sequence[str], *, aggregates: Sequence[Any] = ()) -> Any:
            self.calls.append((len(ids), len(aggregates)))
            return await find(ids, aggregates=aggregates)

        rig.store.find = counting  # type: ignore[method-assign]


LIFECYCLE = ("OrderPlaced", "OrderPaid", "OrderShipped", "OrderDelivered")


async def test_a_backlog_chained_from_the_head_is_stored_without_looking_anything_up(
    rig: Rig,
) -> None:
    """After a stall, each aggregate's waiting events follow its head one after another:
    none of them can be stored yet, so none is looked up (a lookup of thousands of ids
    outlasted its timeout and was retried forever)."""
    orders = [f"o{i}" for i in range(150)]
    chains = {o: chain(*LIFECYCLE, oid=o) for o in orders}
    await rig.take([chains[o][0] for o in orders])
    finds = CountingFinds(rig)
    backlog = [e for step in range(1, 4) for e in (chains[o][step] for o in orders)]
    decided = await rig.take(backlog)
    assert len(decided) == len(backlog) and finds.calls == []
    assert await rig.history("o7") == [(kind, v) for v, kind in enumerate(LIFECYCLE, 1)]


async def test_a_redelivered_backlog_is_looked_up_in_small_calls_per_aggregate(rig: Rig) -> None:
    orders = [f"o{i}" for i in range(150)]
    events = [e for o in orders for e in chain(*LIFECYCLE, oid=o)]
    await rig.take(events)
    rig.appender.forget()  # a rebalance: the next owner knows no head
    finds = CountingFinds(rig)
    decided = await rig.take(events)  # everything again, as after a crash before the commit
    assert len(decided) == len(events)
    assert finds.calls and all(ids <= 256 and aggregates == 1 for ids, aggregates in finds.calls)
    assert await rig.history("o42") == [(kind, v) for v, kind in enumerate(LIFECYCLE, 1)]
    stored = rig.published()
    assert len(stored) == 2 * len(events)  # republished (a crash may have cut it), never renumbered
    assert {v for _, v in stored} == {1, 2, 3, 4}


async def test_aggregates_a_batch_starts_are_stored_without_reading_their_heads() -> None:
    rig = make_rig(whole)
    orders = [f"o{i}" for i in range(100)]
    events = [e for o in orders for e in chain("OrderPlaced", "OrderPaid", oid=o)]
    decided = await rig.take(events)
    assert len(decided) == len(events)
    assert rig.store.calls["heads"] == 0  # a new aggregate costs the store no read
    assert await rig.history("o42") == [("OrderPlaced", 1), ("OrderPaid", 2)]
    assert sorted(v for _, v in rig.published()) == [1] * 100 + [2] * 100


async def test_an_aggregate_claimed_new_that_exists_is_judged_on_its_stored_head() -> None:
    """A command validated against a lost mark claims o1 is new; o1 is stored. Its version 1
    conflicts, and the round after reads the heads: o1 refuses it, o2 and o3 are stored."""
    rig = make_rig(whole)
    await rig.take(chain("OrderPlaced", "OrderPaid", oid="o1"))
    rig.appender.forget()  # a new owner of the partition: it knows no head
    stale = order("OrderPlaced", NEW_AGGREGATE, oid="o1")
    batch = [*chain("OrderPlaced", oid="o2"), stale, *chain("OrderPlaced", oid="o3")]
    decided = await rig.take(batch)
    assert len(decided) == 3
    assert await rig.history("o1") == [("OrderPlaced", 1), ("OrderPaid", 2)]
    assert await rig.history("o2") == [("OrderPlaced", 1)] == await rig.history("o3")
    refusal = (await rig.rejections.find([stale.id]))[stale.id]
    assert refusal.reason == "transition_rejected_at_store"
    assert rig.store.calls["heads"] >= 1  # read once the conflict showed o1 was not new
    assert [v for kind, v in rig.published() if kind == "OrderPlaced"] == [1, 1, 1]


async def test_a_redelivered_start_is_republished_not_stored_again() -> None:
    rig = make_rig(whole)
    events = chain("OrderPlaced", "OrderPaid", "OrderShipped")
    await rig.take(events)
    rig.appender.forget()
    decided = await rig.take(events)  # all again, as after a crash before the commit
    assert len(decided) == 3 and await rig.history() == [
        ("OrderPlaced", 1), ("OrderPaid", 2), ("OrderShipped", 3),
    ]  # fmt: skip
    assert [v for _, v in rig.published()] == [1, 2, 3, 1, 2, 3]


async def test_where_the_archive_holds_a_type_every_head_is_read() -> None:
    rig = make_rig(archived)
    await rig.take(chain("OrderPlaced", "OrderPaid", oid="o1"))
    assert rig.store.calls["heads"] == 1
    assert await rig.history("o1") == [("OrderPlaced", 1), ("OrderPaid", 2)]
