"""The marker and the command memory: one contract, run on the in-memory twins and on real Redis.

Claim-and-mark is one call; a claim is named by its request's token; a recorded outcome or a
claim another request holds is returned instead of marking; an unknown attempt is taken over;
marks live for the marker TTL (never rolled back on a timer) and are replaced only by restore,
repair, or a re-mark over a value shown to be stale; an event sent without an answer is
recorded as unknown by its id, with or without a command id.
"""

from __future__ import annotations

import uuid

from tests.contracts.conftest import Side
from topics.envelope import NEW_AGGREGATE
from workers.ports import Head, MarkRequest


def mark(event_type: str, allowed: list[str], *, key: str = "order:o1", **kw: str) -> MarkRequest:
    return MarkRequest(key, event_type, str(uuid.uuid4()), allowed, **kw)


async def test_no_mark_and_no_fallback_is_missing_then_the_fallback_decides(side: Side) -> None:
    assert (await side.marker.check_and_mark(mark("OrderPlaced", ["none"]))).status == "missing"
    new = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE))
    assert (new.status, new.after, new.current) == ("marked", NEW_AGGREGATE, None)
    refused = await side.marker.check_and_mark(
        mark("OrderShipped", ["OrderPaid"], key="order:o2", fallback="OrderPlaced|h1")
    )
    assert (refused.status, refused.current, refused.after) == ("rejected", "OrderPlaced", "h1")


async def test_a_retry_of_the_same_event_finds_its_own_mark(side: Side) -> None:
    first = mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE)
    assert (await side.marker.check_and_mark(first)).status == "marked"
    again = await side.marker.check_and_mark(first)
    assert (again.status, again.after) == ("mine", NEW_AGGREGATE)


async def test_restore_puts_back_the_previous_mark_only_if_it_is_still_ours(side: Side) -> None:
    placed = mark("OrderPlaced", ["none"], key="order:r1", fallback=NEW_AGGREGATE)
    await side.marker.check_and_mark(placed)
    paid = mark("OrderPaid", ["OrderPlaced"], key="order:r1")
    result = await side.marker.check_and_mark(paid)
    await side.marker.restore(paid, result)
    again = await side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:r1"))
    assert (again.status, again.after) == ("marked", placed.event_id)
    await side.marker.restore(paid, result)  # not ours any more: nothing changes
    third = await side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:r1"))
    assert (third.status, third.current) == ("rejected", "OrderPaid")


async def test_repair_replaces_only_a_mark_that_names_the_refused_event(side: Side) -> None:
    refused = mark("OrderShipped", ["OrderPlaced"], key="order:p1", fallback="OrderPlaced|h1")
    await side.marker.check_and_mark(refused)
    await side.marker.repair("order:p1", "someone-else", Head(1, "h9", "OrderPaid"))
    await side.marker.repair("order:p1", refused.event_id, Head(1, "h1", "OrderPlaced"))
    await side.settled()
    after = await side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:p1"))
    assert (after.status, after.after) == ("marked", "h1")


async def test_a_stale_mark_is_replaced_only_while_it_is_still_the_one_shown_stale(
    side: Side,
) -> None:
    phantom = mark("OrderCancelled", ["*"], key="order:s1", fallback=NEW_AGGREGATE)
    await side.marker.check_and_mark(phantom)
    refused = await side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:s1"))
    assert refused.status == "rejected" and refused.previous
    over = mark("OrderPaid", ["OrderPlaced"], key="order:s1", fallback="OrderPlaced|h1",
                replace=refused.previous)  # fmt: skip
    result = await side.marker.check_and_mark(over)
    assert (result.status, result.after, result.previous) == ("marked", "h1", "")
    late = mark("OrderShipped", ["OrderPlaced"], key="order:s1", fallback="OrderPlaced|h1",
                replace=refused.previous)  # fmt: skip
    assert (await side.marker.check_and_mark(late)).status == "rejected"  # the mark moved on


async def test_claim_and_mark_is_one_call_and_a_recorded_outcome_answers_instead(
    side: Side,
) -> None:
    first = mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE, command_id="c1", token="t1")
    assert (await side.marker.check_and_mark(first)).status == "marked"
    other = MarkRequest(first.aggregate_key, first.event_type, first.event_id, first.allowed,
                        fallback=NEW_AGGREGATE, command_id="c1", token="t2")  # fmt: skip
    busy = await side.marker.check_and_mark(other)
    assert busy.status == "busy" and busy.record is not None and busy.record.token == "t1"
    assert (await side.marker.check_and_mark(first)).status == "mine"  # the holder, again
    await side.memory.settle("order:o1", "c1", b'{"o": "accepted"}')
    await side.settled()
    answered = await side.marker.check_and_mark(other)
    assert answered.status == "answered" and answered.record is not None
    assert answered.record.answer == b'{"o": "accepted"}'


async def test_an_unknown_attempt_is_taken_over_and_recorded_by_event_id(side: Side) -> None:
    first = mark("OrderPlaced", ["none"], fallback=NEW_AGGREGATE, command_id="c2", token="t1")
    await side.marker.check_and_mark(first)
    await side.memory.unknown("order:o1", "c2", first.event_id)
    by_event = await side.memory.recall_event("order:o1", first.event_id)
    assert by_event is not None and by_event.state == "unknown"
    retry = MarkRequest(first.aggregate_key, first.event_type, first.event_id, first.allowed,
                        fallback=NEW_AGGREGATE, command_id="c2", token="t2")  # fmt: skip
    taken = await side.marker.check_and_mark(retry)
    assert (taken.status, taken.takeover) == ("mine", True)
    held = await side.memory.recall("order:o1", "c2")
    assert held is not None and (held.state, held.token) == ("pending", "t2")


async def test_an_event_without_a_command_id_is_recorded_unknown_by_its_id(side: Side) -> None:
    await side.memory.unknown("order:o9", None, "e-9")
    found = await side.memory.recall_event("order:o9", "e-9")
    assert found is not None and (found.state, found.event_id) == ("unknown", "e-9")
    assert await side.memory.recall_event("order:o9", "e-other") is None


async def test_unknown_never_overwrites_a_recorded_outcome(side: Side) -> None:
    await side.memory.settle("order:o3", "c3", b'{"o": "refused"}')
    await side.settled()
    await side.memory.unknown("order:o3", "c3", "e3")
    kept = await side.memory.recall("order:o3", "c3")
    assert kept is not None and (kept.state, kept.answer) == ("answered", b'{"o": "refused"}')


async def test_a_sync_claim_takes_over_unknown_and_returns_what_blocks_it(side: Side) -> None:
    assert await side.memory.claim("order:c1", "cmd-7", "e1", "t1") is None
    assert await side.memory.claim("order:c1", "cmd-7", "e1", "t1") is None  # held by it already
    pending = await side.memory.claim("order:c1", "cmd-7", "e1", "t2")
    assert pending is not None and (pending.state, pending.token) == ("pending", "t1")
    await side.memory.unknown("order:c1", "cmd-7", "e1")
    taken = await side.memory.claim("order:c1", "cmd-7", "e1", "t2")
    assert taken is not None and taken.state == "unknown"
    again = await side.memory.claim("order:c1", "cmd-7", "e1", "t3")
    assert again is not None and (again.state, again.token) == ("pending", "t2")


async def test_release_forgets_only_the_claim_of_its_own_request(side: Side) -> None:
    assert await side.memory.claim("order:c2", "cmd-1", "e1", "t1") is None
    await side.memory.release("order:c2", "cmd-1", "t-other")
    assert await side.memory.recall("order:c2", "cmd-1") is not None
    await side.memory.release("order:c2", "cmd-1", "t1")
    assert await side.memory.recall("order:c2", "cmd-1") is None


async def test_the_filter_answers_new_only_when_ready_and_never_for_a_noted_aggregate(
    side: Side,
) -> None:
    assert (
        await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f1"))
    ).status == "missing"
    await side.marker.note_aggregates(["order:f2"])
    await side.settled()
    await side.marker.mark_filter_ready()
    assert await side.marker.filter_ready()
    new = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f3"))
    assert (new.status, new.after) == ("marked", NEW_AGGREGATE)
    noted = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f2"))
    assert noted.status == "missing"
    await side.marker.forget_filter()
    assert not await side.marker.filter_ready()
    lost = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:f4"))
    assert lost.status == "missing"


async def test_peek_reads_the_mark_without_changing_it(side: Side) -> None:
    placed = mark("OrderPlaced", ["none"], key="order:k1", fallback=NEW_AGGREGATE)
    assert await side.marker.peek("order:k1") is None
    await side.marker.check_and_mark(placed)
    assert await side.marker.peek("order:k1") == ("OrderPlaced", placed.event_id)
    assert await side.marker.ping()


async def test_a_type_that_cannot_start_an_aggregate_asks_the_store_whatever_the_filter(
    side: Side,
) -> None:
    """The filter only ever says "new", which for such a type is a refusal the store must
    confirm anyway: with no mark it answers missing, ready filter or not."""
    await side.marker.mark_filter_ready()
    paid = await side.marker.check_and_mark(mark("OrderPaid", ["OrderPlaced"], key="order:g1"))
    assert paid.status == "missing"
    placed = await side.marker.check_and_mark(mark("OrderPlaced", ["none"], key="order:g2"))
    assert (placed.status, placed.after) == ("marked", NEW_AGGREGATE)
    anything = await side.marker.check_and_mark(mark("Noted", ["*"], key="order:g3"))
    assert (anything.status, anything.after) == ("marked", NEW_AGGREGATE)


async def test_a_refusal_at_the_door_is_kept_apart_from_the_claim(side: Side) -> None:
    """``refused`` keeps the newest refusal by command id; the claim stays free for a retry."""
    assert await side.memory.recall_refusal("order:r1", "c-1") is None
    await side.memory.refused("order:r1", "c-1", b'{"o": "refused", "code": "a"}')
    await side.memory.refused("order:r1", "c-1", b'{"o": "refused", "code": "b"}')
    await side.settled()
    assert await side.memory.recall_refusal("order:r1", "c-1") == b'{"o": "refused", "code": "b"}'
    assert await side.memory.recall("order:r1", "c-1") is None  # no recorded answer: judged again
    assert await side.memory.claim("order:r1", "c-1", "e1", "t1") is None
    assert await side.memory.recall_refusal("order:r1", "c-2") is None  # another command
    assert await side.memory.recall_refusal("order:r2", "c-1") is None  # another aggregate


async def test_an_unknown_event_is_recalled_with_its_age_and_command(side: Side) -> None:
    await side.memory.unknown("order:o20", "c20", "e-20")
    found = await side.memory.recall_event("order:o20", "e-20")
    assert found is not None and (found.state, found.command_id) == ("unknown", "c20")
    assert found.age_s is not None and 0 <= found.age_s < 5
    alone = await side.memory.recall_event("order:o21", "e-21")
    assert alone is None


async def test_resolving_a_fresh_unknown_changes_nothing(side: Side) -> None:
    await side.memory.unknown("order:o22", "c22", "e-22")
    resolved = await side.memory.resolve(
        "order:o22", "e-22", answer=b'{"o":"not_stored"}', command_answer=None, min_age_s=30
    )
    assert resolved is False
    by_event = await side.memory.recall_event("order:o22", "e-22")
    by_command = await side.memory.recall("order:o22", "c22")
    assert by_event is not None and by_event.state == "unknown"
    assert by_command is not None and by_command.state == "unknown"


async def test_not_stored_forgets_the_command_so_a_retry_sends_again_and_is_idempotent(
    side: Side,
) -> None:
    await side.memory.unknown("order:o23", "c23", "e-23")
    answer = b'{"o":"not_stored","event_id":"e-23"}'
    assert await side.memory.resolve(
        "order:o23", "e-23", answer=answer, command_answer=None, min_age_s=0
    )
    by_event = await side.memory.recall_event("order:o23", "e-23")
    assert by_event is not None and (by_event.state, by_event.answer) == ("answered", answer)
    assert await side.memory.recall("order:o23", "c23") is None
    again = await side.memory.resolve(
        "order:o23", "e-23", answer=b"other", command_answer=None, min_age_s=0
    )
    assert again is False  # resolved once: a second resolver changes nothing
    assert await side.memory.claim("order:o23", "c23", "e-23", "t-retry") is None  # sent again


async def test_a_retry_holding_the_claim_is_never_resolved_over(side: Side) -> None:
    await side.memory.unknown("order:o24", "c24", "e-24")
    taken = await side.memory.claim("order:o24", "c24", "e-24", "t-2")
    assert taken is not None and taken.state == "unknown"  # taken over by the retry
    resolved = await side.memory.resolve(
        "order:o24", "e-24", answer=b'{"o":"not_stored"}', command_answer=None, min_age_s=0
    )
    assert resolved is False
    held = await side.memory.recall("order:o24", "c24")
    assert held is not None and (held.state, held.token) == ("pending", "t-2")
    by_event = await side.memory.recall_event("order:o24", "e-24")
    assert by_event is not None and by_event.state == "unknown"


async def test_a_copy_found_in_the_log_answers_the_command_too(side: Side) -> None:
    await side.memory.unknown("order:o25", "c25", "e-25")
    accepted = b'{"o":"accepted","event_id":"e-25","partition":0,"offset":7}'
    assert await side.memory.resolve(
        "order:o25", "e-25", answer=accepted, command_answer=accepted, min_age_s=0
    )
    by_command = await side.memory.recall("order:o25", "c25")
    assert by_command is not None and (by_command.state, by_command.answer) == (
        "answered", accepted,
    )  # fmt: skip


async def test_an_event_never_recorded_unknown_is_not_resolved(side: Side) -> None:
    assert not await side.memory.resolve(
        "order:o26", "e-26", answer=b"x", command_answer=None, min_age_s=0
    )
    assert await side.memory.recall_event("order:o26", "e-26") is None
