"""The command side on memory adapters: true answers, safe retries, bounded claims and marks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from snapshot_rules.domain import Domains
from tests.clock import Clock
from tests.orders import ITEMS
from tests.roles.command_side import command_side
from tests.roles.commanding import EVENTS, Side, make_side, waiting_on_progress
from tests.waiting import wait_for, within
from topics.envelope import (
    NEW_AGGREGATE,
    Actor,
    command_scope,
    decode,
    derived_event_id,
    new_event,
    utc_now,
)
from topics.errors import StoreOutcomeUnknown, StreamOutcomeUnknown
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
)
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.metrics import create_metrics
from workers.ports import MarkRequest, MarkResult, Outgoing, Record, Rejection
from workers.roles.command.newfilter import keep_filter_ready, rebuild_filter, retry_after
from workers.roles.command.requests import CommandRequest
from workers.roles.outcomes import Accepted, encode, refusal_at_store
from workers.runtime.answers import Answer, answer_of


@pytest.fixture
def side() -> Side:
    return make_side()


async def test_an_accepted_event_carries_the_id_it_was_validated_after(side: Side) -> None:
    placed = await side.ask("order:o1", "OrderPlaced", ITEMS)
    paid = await side.ask("order:o1", "OrderPaid", {"amount": 2})
    assert (placed.status, paid.status) == (202, 202)
    assert side.produced() == [
        (placed.body["event_id"], NEW_AGGREGATE),
        (paid.body["event_id"], placed.body["event_id"]),
    ]


async def test_a_produce_without_an_answer_is_outcome_unknown_and_the_retry_is_the_same_event(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    side.producer.fail_next(1, StreamOutcomeUnknown("Kafka did not acknowledge in time."))
    first = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert (first.status, first.body["error"]) == (503, "outcome_unknown")
    expected_id = derived_event_id("order", "o1", "pay-1")
    assert first.body["event_id"] == expected_id
    assert "nothing was written" not in first.body["message"].lower()
    assert (await side.memory.recall("order:o1", "pay-1")).state == "unknown"  # type: ignore[union-attr]
    retry = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert retry.status == 202 and retry.body["event_id"] == expected_id
    # Whatever the broker did with the first attempt, both copies are one event: one id.
    assert {event_id for event_id, _ in side.produced()[1:]} == {expected_id}


async def test_nothing_sent_is_503_unavailable_and_leaves_no_trace(side: Side) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    side.producer.fail_next(1)
    failed = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert (failed.status, failed.body["error"]) == (503, "stream_unavailable")
    assert "Nothing was written" in failed.body["message"]
    assert await side.memory.recall("order:o1", "pay-1") is None  # the claim was released
    again = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert again.status == 202  # the mark was restored: OrderPaid is allowed again


async def test_a_retry_after_an_unknown_outcome_that_was_stored_answers_stored(side: Side) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    side.producer.fail_next(1, StreamOutcomeUnknown("no answer"))
    await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    # The broker appended it after all and the appender stored it; the mark expired meanwhile.
    paid_id = derived_event_id("order", "o1", "pay-1")
    placed = decode(side.producer.records(EVENTS)[0].value)
    paid = new_event("order", "o1", "OrderPaid", {"amount": 2}, id=paid_id, after=placed.id)
    await side.store.append([placed.with_version(1), paid.with_version(2)])
    side.clock.now += 3600
    retry = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert retry.status == 202 and retry.body == {
        "event_id": paid_id,
        "version": 2,
        "duplicate": True,
    }


async def test_a_retry_refused_by_the_marker_while_the_first_may_land_stays_unknown(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    placed = decode(side.producer.records(EVENTS)[0].value)
    await side.store.append([placed.with_version(1)])  # what the appender did
    side.producer.fail_next(1, StreamOutcomeUnknown("no answer"))
    await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    side.clock.now += 3600  # marks are not rolled back on a timer: it names the unknown Paid
    cancelled = await side.ask("order:o1", "OrderCancelled", {"reason": "x"})
    assert cancelled.status == 202
    retry = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert (retry.status, retry.body["error"]) == (503, "outcome_unknown")


async def test_a_store_refusal_is_the_answer_of_a_later_retry_and_of_the_outcome(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    shipped_id = derived_event_id("order", "o1", "ship-1")
    await side.rejections.record(
        [Rejection(shipped_id, "order", "o1", "OrderShipped", "transition_rejected_at_store",
                   "OrderShipped may not follow OrderPlaced", "ship-1", utc_now())]
    )  # fmt: skip
    retry = await side.ask("order:o1", "OrderShipped", {"carrier": "dhl"}, command_id="ship-1")
    assert (retry.status, retry.body["error"]) == (409, "transition_rejected_at_store")
    outcome = await side.outcomes.ask("order", "o1", command_id="ship-1")
    assert outcome is not None and outcome["outcome"] == "rejected"


async def test_a_pending_claim_waits_for_the_first_answer_then_gives_up_within_its_bound(
    side: Side,
) -> None:
    event_id = derived_event_id("order", "o1", "c-1")
    assert await side.memory.claim("order:o1", "c-1", event_id, "another") is None
    busy = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="c-1")
    assert (busy.status, busy.body["error"]) == (409, "command_in_progress")
    side.clock.now += 3600  # the holder died: its claim is bounded
    assert (await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="c-1")).status == 202
    again = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="c-1")
    assert again.status == 202 and again.body["event_id"] == event_id  # the first answer


class AnsweredDuringTheWait(MemoryMarker):
    """A marker whose command claim is held by another request at the first try: that request
    answers (its outcome recorded) while this one waits to claim again."""

    def __init__(self, answer: bytes, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.memory = MemoryCommandMemory(clock=clock, records=self.records)
        self.answer, self.tries = answer, 0

    async def check_and_mark(self, request: MarkRequest) -> MarkResult:
        self.tries += 1
        result = await super().check_and_mark(request)
        if result.status == "busy":
            assert request.command_id is not None
            await self.memory.settle(request.aggregate_key, request.command_id, self.answer)
        return result


async def test_a_claim_held_at_the_first_try_is_claimed_again_and_told_the_holders_answer() -> None:
    clock = Clock()
    event_id = derived_event_id("order", "o1", "c-1")
    marker = AnsweredDuringTheWait(encode(Accepted(event_id, 0, 7)), clock)
    memory = marker.memory
    store, producer = MemoryEventStore(), MemoryProducer(default_partitions=1)
    service = command_side(
        domains=Domains([ORDER]), marker=marker, memory=memory, store=store,
        rejections=MemoryRejections(), producer=producer,
        progress=MemoryAppendProgress(producer, EVENTS), events_topic=EVENTS,
        metrics=create_metrics(), answer_wait_s=0.2,
    )  # fmt: skip
    assert await memory.claim("order:o1", "c-1", event_id, "another") is None
    request = CommandRequest("order", "o1", "OrderPlaced", ITEMS, command_id="c-1")
    answer = answer_of(await service.handle(request))
    assert answer.status == 202
    assert (answer.body["event_id"], answer.body["offset"]) == (event_id, 7)  # the holder's
    assert marker.tries == 2 and producer.records(EVENTS) == []


async def test_a_marker_that_is_down_is_503_and_releases_the_claim(side: Side) -> None:
    side.marker.down()
    answer = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="c-9")
    assert (answer.status, answer.body["error"]) == (503, "marker_unavailable")
    assert await side.memory.recall("order:o1", "c-9") is None
    assert side.produced() == []


async def test_sync_retry_of_an_applied_withdrawal_that_would_now_overdraw_is_a_duplicate(
    side: Side,
) -> None:
    await side.ask("account:a1", "AccountOpened", {"owner": "ann"})
    await side.ask("account:a1", "MoneyDeposited", {"amount": 50})
    first = await side.ask("account:a1", "MoneyWithdrawn", {"amount": 40}, command_id="w-1")
    assert first.status == 201
    # The answer was lost (Redis): the memory forgets it, the client retries the same command.
    side.clock.now += 10 * 86_400
    retry = await side.ask("account:a1", "MoneyWithdrawn", {"amount": 40}, command_id="w-1")
    assert retry.status == 201 and retry.body["duplicate"] is True
    assert retry.body["event_id"] == first.body["event_id"]
    balance = [e for e in await side.store.select(("account", "a1")) if e.type == "MoneyWithdrawn"]
    assert len(balance) == 1


async def test_sync_store_write_without_an_answer_is_outcome_unknown(side: Side) -> None:
    await side.ask("account:a1", "AccountOpened", {"owner": "ann"})
    side.store.fail_next(
        1, StoreOutcomeUnknown("MongoDB did not answer; it may have applied it."), on="append"
    )
    answer = await side.ask("account:a1", "MoneyDeposited", {"amount": 5}, command_id="d-1")
    assert (answer.status, answer.body["error"]) == (503, "outcome_unknown")
    assert answer.body["event_id"] == derived_event_id("account", "a1", "d-1")
    retry = await side.ask("account:a1", "MoneyDeposited", {"amount": 5}, command_id="d-1")
    assert retry.status == 201
    deposits = [e for e in await side.store.select(("account", "a1")) if e.type == "MoneyDeposited"]
    assert len(deposits) == 1


async def test_sync_stored_but_not_acknowledged_by_kafka_is_a_201(side: Side) -> None:
    await side.ask("account:a1", "AccountOpened", {"owner": "ann"})
    side.producer.down()
    answer = await side.ask("account:a1", "MoneyDeposited", {"amount": 5})
    assert answer.status == 201 and answer.body["published"] is False
    side.producer.up()


async def test_numbers_beyond_64_bits_and_bad_input_write_nothing(side: Side) -> None:
    big = {"items": [{"sku": "tea", "qty": 2**63 - 1, "price": 2**63 - 1}]}
    answer = await side.ask("order:o1", "OrderPlaced", big)
    assert (answer.status, answer.body["error"]) == (422, "invalid_data")
    assert side.produced() == []


async def test_the_outcome_of_what_was_never_seen_is_404_and_one_id_is_required(side: Side) -> None:
    assert await side.outcomes.ask("order", "o1", command_id="never") is None
    with pytest.raises(Exception, match="exactly one of"):
        await side.outcomes.ask("order", "o1")
    await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="p-1")
    accepted = await side.outcomes.ask("order", "o1", command_id="p-1")
    assert accepted is not None and accepted["outcome"] == "accepted"
    body = orjson.loads(orjson.dumps(accepted))
    assert body["event_id"] == derived_event_id("order", "o1", "p-1")


async def test_a_ready_filter_spares_the_store_read_for_a_new_aggregate(side: Side) -> None:
    assert (await side.ask("order:o1", "OrderPlaced", ITEMS)).status == 202
    assert side.store.calls["select"] == 1  # no filter yet: the store was asked
    await rebuild_filter(side.marker, side.store, Domains([ORDER, ACCOUNT]))
    assert (await side.ask("order:o2", "OrderPlaced", ITEMS)).status == 202
    assert side.store.calls["select"] == 1  # certainly new: no read
    side.marker.lose_filter()  # Redis flushed: the filter is not ready, reads come back
    assert (await side.ask("order:o3", "OrderPlaced", ITEMS)).status == 202
    assert side.store.calls["select"] == 2


async def test_the_filter_is_rebuilt_from_the_store_and_knows_what_it_holds(side: Side) -> None:
    await _placed(side, "o1")
    await side.stored_as_produced()
    assert await rebuild_filter(side.marker, side.store, Domains([ORDER, ACCOUNT])) == 1
    side.clock.now += 10 * 86_400  # every mark expired
    again = await side.ask("order:o1", "OrderPlaced", ITEMS)
    assert again.status == 409  # the filter said "exists": the store was asked, and refuses


def test_a_failed_filter_check_waits_twice_as_long_each_time_up_to_its_longest() -> None:
    waits = [retry_after(n, interval_s=5, longest_s=300) for n in range(9)]
    assert waits == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert retry_after(10_000, interval_s=5, longest_s=300) == 300  # no overflow, ever
    assert retry_after(3, interval_s=500, longest_s=300) == 500  # never below the interval


async def test_a_filter_rebuild_that_failed_is_tried_again_and_ends_ready(side: Side) -> None:
    await _placed(side, "o1")
    await side.stored_as_produced()
    side.store.fail_next(2, on="versions")  # the store did not answer the first two rebuilds
    keeping = asyncio.create_task(keep_filter_ready(
        side.marker, side.store, Domains([ORDER, ACCOUNT]), interval_s=0.001, longest_s=0.01
    ))  # fmt: skip
    try:
        await wait_for(side.marker.filter_ready, timeout_s=10, what="the filter rebuilt")
    finally:
        keeping.cancel()
    assert side.store.calls["versions"] == 3
    side.clock.now += 10 * 86_400  # every mark expired: only the filter knows o1
    assert (await side.ask("order:o1", "OrderPlaced", ITEMS)).status == 409


async def _placed(side: Side, order: str) -> Record:
    await side.ask(f"order:{order}", "OrderPlaced", ITEMS)
    return side.producer.records(EVENTS)[-1]


# --- every answer stays true at the edges of a fault (issue 19) --------------------------------


async def _refuse_at_store(side: Side, event_id: str, kind: str, *, memory: bool) -> None:
    """What the appender does when the store refuses an accepted event (memory: best effort)."""
    event = next(
        decode(r.value) for r in side.producer.records(EVENTS) if decode(r.value).id == event_id
    )
    rejection = Rejection(event_id, "order", event.aggregate_id, kind, "transition_rejected_at_store",
                          f"{kind} may not follow OrderPlaced (checked at the store)",
                          event.metadata.command_id, utc_now())  # fmt: skip
    await side.rejections.record([rejection])
    if memory and event.metadata.command_id:
        await side.memory.settle(f"order:{event.aggregate_id}", event.metadata.command_id,
                                 encode(refusal_at_store(rejection)))  # fmt: skip


@pytest.mark.parametrize("memory", [True, False], ids=["memory-told", "memory-lost"])
async def test_a_retry_of_a_command_the_store_refused_is_told_so_never_a_fresh_202(
    side: Side, memory: bool
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    await side.stored_as_produced()
    first = await side.ask("order:o1", "OrderCancelled", {"reason": "x"}, command_id="cancel-1")
    assert first.status == 202
    await _refuse_at_store(side, first.body["event_id"], "OrderCancelled", memory=memory)
    for _ in range(2):
        retry = await side.ask("order:o1", "OrderCancelled", {"reason": "x"}, command_id="cancel-1")
        assert (retry.status, retry.body["error"]) == (409, "transition_rejected_at_store")
        assert retry.body["event_id"] == first.body["event_id"]
    outcome = await side.outcomes.ask("order", "o1", command_id="cancel-1")
    assert outcome is not None and outcome["outcome"] == "rejected"


async def test_a_retry_of_an_accepted_command_in_flight_is_the_same_202_and_once_stored_its_version(
    side: Side,
) -> None:
    first = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="p-1")
    retry = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="p-1")
    assert retry.status == 202 and retry.body["duplicate"] is True
    assert (retry.body["event_id"], retry.body["offset"]) == (
        first.body["event_id"],
        first.body["offset"],
    )
    await side.stored_as_produced()
    stored = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="p-1")
    assert stored.body == {"event_id": first.body["event_id"], "version": 1, "duplicate": True}
    assert len(side.producer.records(EVENTS)) == 1  # never sent again


async def test_an_event_sent_without_an_answer_is_unknown_not_none_with_or_without_a_command_id(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    side.producer.fail_next(1, StreamOutcomeUnknown("Kafka did not acknowledge in time."))
    without = await side.ask("order:o1", "OrderPaid", {"amount": 2})
    assert (without.status, without.body["error"]) == (503, "outcome_unknown")
    asked = await side.outcomes.ask("order", "o1", event_id=without.body["event_id"])
    assert asked is not None and asked["outcome"] == "unknown"
    await side.ask("order:o2", "OrderPlaced", ITEMS)
    # Even when the claim expired before the produce gave up, it is recorded as unknown.
    side.producer.fail_next(1, StreamOutcomeUnknown("Kafka did not acknowledge in time."))
    side.clock.now += 3600
    with_id = await side.ask("order:o2", "OrderPaid", {"amount": 2}, command_id="pay-2")
    assert with_id.body["error"] == "outcome_unknown"
    side.clock.now += 3600
    asked = await side.outcomes.ask("order", "o2", command_id="pay-2")
    assert asked is not None and asked["outcome"] == "unknown"


async def test_a_mark_is_never_rolled_back_on_a_timer_while_its_event_may_still_be_stored(
    side: Side,
) -> None:
    """The appender stalls past any bound: the client told 'accepted' goes on, never a false 409."""
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    assert (await side.ask("order:o1", "OrderPaid", {"amount": 2})).status == 202
    side.clock.now += 3600  # the appender has stored nothing for an hour
    shipped = await side.ask("order:o1", "OrderShipped", {"carrier": "dhl"})
    assert shipped.status == 202
    assert [after for _, after in side.produced()][2] == decode(
        side.producer.records(EVENTS)[1].value
    ).id


async def test_after_redis_lost_its_state_a_refusal_waits_for_the_store_never_a_false_409(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    await side.stored_as_produced()
    assert (await side.ask("order:o1", "OrderPaid", {"amount": 2})).status == 202  # in flight
    side.marker.lose_everything()  # FLUSHALL, or a restart without persistence
    shipped = await side.ask("order:o1", "OrderShipped", {"carrier": "dhl"})
    # The store's head (Placed) trails the accepted OrderPaid: refusing would be false.
    assert (shipped.status, shipped.body["error"]) == (503, "store_catching_up")
    assert shipped.body["retry_after_s"] == 1
    assert len(side.producer.records(EVENTS)) == 2  # nothing written
    await side.stored_as_produced()  # the appender catches up
    assert (await side.ask("order:o1", "OrderShipped", {"carrier": "dhl"})).status == 202
    await side.stored_as_produced()
    wrong = await side.ask("order:o1", "OrderPaid", {"amount": 2})
    assert (wrong.status, wrong.body["error"], wrong.body["current"]) == (
        409,
        "transition_rejected",
        "OrderShipped",
    )


async def test_a_phantom_mark_is_replaced_once_the_store_shows_its_event_never_came(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    await side.stored_as_produced()
    # A script Redis ran after its caller gave up: the mark names an event never produced.
    await side.marker.check_and_mark(
        MarkRequest("order:o1", "OrderCancelled", "phantom-id", ["*"], fallback="-")
    )
    paid = await side.ask("order:o1", "OrderPaid", {"amount": 2})
    assert paid.status == 202  # the store's settled head (Placed) allows it
    assert side.produced()[-1][1] == decode(side.producer.records(EVENTS)[0].value).id
    assert (await side.marker.peek("order:o1"))[1] == paid.body["event_id"]  # type: ignore[index]


async def test_a_refusal_against_the_stored_head_is_answered_at_once(side: Side) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    await side.stored_as_produced()
    side.progress.faults.down()  # the progress is not needed: the mark names the stored head
    refused = await side.ask("order:o1", "OrderShipped", {"carrier": "dhl"})
    assert (refused.status, refused.body["current"]) == (409, "OrderPlaced")
    assert refused.body["allowed"] == ["OrderPaid"]
    assert side.refusals_decided() == {"head": 1}


async def test_a_refusal_against_an_event_in_flight_waits_for_it_then_is_true(side: Side) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    await side.stored_as_produced()
    assert (await side.ask("order:o1", "OrderCancelled", {"reason": "x"})).status == 202
    late = await side.ask("order:o1", "OrderPaid", {"amount": 2})
    assert (late.status, late.body["error"]) == (503, "store_catching_up")  # Cancelled in flight
    await side.stored_as_produced()
    late = await side.ask("order:o1", "OrderPaid", {"amount": 2})
    assert (late.status, late.body["current"]) == (409, "OrderCancelled")
    assert side.refusals_decided() == {"not_yet": 1, "head": 1}


async def test_a_refusal_waiting_for_the_appender_is_answered_once_the_marked_event_is_stored() -> (
    None
):
    """A busy appender commits only now and then: once the live feed tells that the event the
    mark names is stored, it is the store's head and the refusal is true, commit or not."""
    side = make_side(refusal_wait_s=60)
    late = await payment_after_a_cancellation_in_flight(side)
    await side.store_produced()  # stored and announced, never committed
    answer = await within(late, timeout_s=10, what="the late answer")
    assert (answer.status, answer.body["current"]) == (409, "OrderCancelled")
    assert not await side.progress.caught_up(b"order:o1", within_s=0)
    assert len(side.producer.records(EVENTS)) == 2  # nothing written
    assert side.feed.listeners() == 0  # it stopped listening
    assert side.refusals_decided() == {"announced": 1}


async def test_a_lost_announcement_leaves_the_refusal_to_the_appenders_commit() -> None:
    side = make_side(refusal_wait_s=60)
    late = await payment_after_a_cancellation_in_flight(side)
    side.feed.lose_next()
    await side.store_produced()
    done, _ = await asyncio.wait({late}, timeout=0.2)
    assert not done  # nothing told it: it waits for the appender's progress
    side.progress.decide_all()
    answer = await within(late, timeout_s=10, what="the late answer")
    assert (answer.status, answer.body["current"]) == (409, "OrderCancelled")
    assert side.refusals_decided() == {"settled": 1}


async def test_a_store_that_fails_while_a_refusal_waits_makes_it_503_never_409() -> None:
    side = make_side(refusal_wait_s=60)
    late = await payment_after_a_cancellation_in_flight(side)
    side.store.faults.down()
    cancelled = decode(side.producer.records(EVENTS)[1].value)
    side.feed.announce([Outgoing.of(cancelled.with_version(2))])  # the head is read: it fails
    answer = await within(late, timeout_s=10, what="the late answer")
    assert (answer.status, answer.body["error"]) == (503, "store_unavailable")
    assert len(side.producer.records(EVENTS)) == 2
    assert side.feed.listeners() == 0
    assert side.refusals_decided() == {}  # an error, not a decision


async def test_an_announcement_of_another_event_proves_no_refusal() -> None:
    """A phantom mark (an event never produced): what the feed tells of the aggregate is not
    the marked event, so the store's settled head decides, as without the feed."""
    side = make_side(refusal_wait_s=60)
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    await side.stored_as_produced()
    await side.marker.check_and_mark(
        MarkRequest("order:o1", "OrderCancelled", "phantom-id", ["*"], fallback="-")
    )
    await side.ask("order:o2", "OrderPlaced", ITEMS)  # in flight: the progress waits for it
    paid = asyncio.ensure_future(side.ask("order:o1", "OrderPaid", {"amount": 2}))
    await wait_for(waiting_on_progress(side), timeout_s=10, what="the request waiting")
    placed = decode(side.producer.records(EVENTS)[0].value)
    side.feed.announce([Outgoing.of(placed.with_version(1))])  # heard again: not the mark
    done, _ = await asyncio.wait({paid}, timeout=0.2)
    assert not done
    await side.stored_as_produced()
    answer = await within(paid, timeout_s=10, what="the payment answered")
    assert answer.status == 202  # the settled head (Placed) allows it: the phantom is replaced
    assert side.refusals_decided() == {"remarked": 1}


async def payment_after_a_cancellation_in_flight(side: Side) -> asyncio.Future[Answer]:
    """Order o1 placed and stored, its cancellation accepted and in flight: its payment, which
    the marker refuses, waiting for the appender (the future of its answer)."""
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    await side.stored_as_produced()
    assert (await side.ask("order:o1", "OrderCancelled", {"reason": "x"})).status == 202
    late = asyncio.ensure_future(side.ask("order:o1", "OrderPaid", {"amount": 2}))
    await wait_for(waiting_on_progress(side), timeout_s=10, what="the refusal waiting")
    return late


async def test_a_filter_rebuilt_while_a_creation_is_in_flight_never_makes_a_false_409(
    side: Side,
) -> None:
    """Redis lost everything; the filter is rebuilt from the store, which does not hold the
    order placed a moment ago: its "new" must not refuse the order's payment."""
    assert (await side.ask("order:o1", "OrderPlaced", ITEMS)).status == 202  # in flight
    side.marker.lose_everything()
    await rebuild_filter(side.marker, side.store, Domains([ORDER, ACCOUNT]))
    paid = await side.ask("order:o1", "OrderPaid", {"amount": 2})
    assert (paid.status, paid.body["error"]) == (503, "store_catching_up")
    await side.stored_as_produced()
    assert (await side.ask("order:o1", "OrderPaid", {"amount": 2})).status == 202
    await side.stored_as_produced()
    nope = await side.ask("order:nope", "OrderPaid", {"amount": 2})  # settled: truly new
    assert (nope.status, nope.body["current"]) == (409, None)


async def test_a_filter_built_on_another_run_of_redis_is_not_trusted(side: Side) -> None:
    await rebuild_filter(side.marker, side.store, Domains([ORDER, ACCOUNT]))
    assert await side.marker.filter_ready()
    side.marker.restart()  # restarted from a dump: notes after the dump are missing
    assert not await side.marker.filter_ready()


CAROL, BOB = Actor("carol"), Actor("bob")


async def send_as(
    side: Side,
    actor: Actor | None,
    aggregate: str,
    kind: str,
    data: Mapping[str, Any],
    command_id: str,
) -> Answer:
    aggregate_type, aggregate_id = aggregate.split(":")
    request = CommandRequest(
        aggregate_type, aggregate_id, kind, data, command_id=command_id, actor=actor
    )
    return answer_of(await side.service.handle(request))


async def test_a_command_id_is_its_senders_own_in_async_and_sync_mode(side: Side) -> None:
    carols = await send_as(side, CAROL, "order:o1", "OrderPlaced", ITEMS, "c-1")
    bobs = await send_as(side, BOB, "order:o1", "OrderPaid", {"amount": 2}, "c-1")
    assert (carols.status, bobs.status) == (202, 202) and "duplicate" not in bobs.body
    assert bobs.body["event_id"] != carols.body["event_id"]
    again = await send_as(side, CAROL, "order:o1", "OrderPlaced", ITEMS, "c-1")
    assert again.body == {**carols.body, "duplicate": True}

    opened = await send_as(side, CAROL, "account:a1", "AccountOpened", {"owner": "c"}, "s-1")
    deposit = await send_as(side, BOB, "account:a1", "MoneyDeposited", {"amount": 3}, "s-1")
    assert (opened.status, opened.body["version"]) == (201, 1)
    assert (deposit.status, deposit.body["version"]) == (201, 2), deposit.body
    retry = await send_as(side, CAROL, "account:a1", "AccountOpened", {"owner": "c"}, "s-1")
    assert (retry.body["event_id"], retry.body["version"]) == (opened.body["event_id"], 1)
    for who, version in ((CAROL, 1), (BOB, 2)):
        found = await side.outcomes.ask("account", "a1", command_id="s-1", actor=who)
        assert found is not None and (found["outcome"], found["version"]) == ("stored", version)
    assert await side.outcomes.ask("account", "a1", command_id="s-1", actor=Actor("dave")) is None


async def test_a_refusal_at_the_door_is_its_senders_outcome_and_a_retry_is_judged_again(
    side: Side,
) -> None:
    refused = await send_as(side, CAROL, "order:o2", "OrderPaid", {"amount": 2}, "c-1")
    assert (refused.status, refused.body["error"]) == (409, "transition_rejected")
    found = await side.outcomes.ask("order", "o2", command_id="c-1", actor=CAROL)
    assert found is not None and found["outcome"] == "rejected", found
    assert (found["reason"], found["message"]) == ("transition_rejected", refused.body["message"])
    assert await side.outcomes.ask("order", "o2", command_id="c-1", actor=BOB) is None
    assert await side.outcomes.ask("order", "o2", command_id="c-1") is None  # unscoped: another

    await send_as(side, CAROL, "order:o2", "OrderPlaced", ITEMS, "c-0")
    await side.stored_as_produced()
    retry = await send_as(side, CAROL, "order:o2", "OrderPaid", {"amount": 2}, "c-1")
    assert retry.status == 202 and "duplicate" not in retry.body, retry.body
    found = await side.outcomes.ask("order", "o2", command_id="c-1", actor=CAROL)
    assert found is not None and found["outcome"] == "accepted", found


async def test_no_refusal_is_remembered_for_a_command_in_progress_and_a_lost_one_is_no_error(
    side: Side,
) -> None:
    scoped = command_scope("c-9", CAROL)
    event_id = derived_event_id("order", "o3", scoped)
    assert await side.memory.claim("order:o3", scoped, event_id, "another-request") is None
    busy = await send_as(side, CAROL, "order:o3", "OrderPlaced", ITEMS, "c-9")
    assert (busy.status, busy.body["error"]) == (409, "command_in_progress")
    assert await side.memory.recall_refusal("order:o3", scoped) is None

    side.memory.faults.fail_next(1, on="refused")  # Redis lost the refusal: the answer stands
    refused = await send_as(side, CAROL, "order:o4", "OrderShipped", {"carrier": "x"}, "c-8")
    assert (refused.status, refused.body["error"]) == (409, "transition_rejected")
    assert await side.outcomes.ask("order", "o4", command_id="c-8", actor=CAROL) is None
