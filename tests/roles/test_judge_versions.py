"""The store judges expected versions (issue 47): an event that expects version e is stored as
e + 1 or refused (``wrong_expected_version``, naming the head's version), whatever the door
believed, the arrival order or the losses on the way; a retry of its command is told so.

The judge alone first (pure, Hypothesis over interleavings), then the appender on the memory
adapters: the refusal recorded, answered, dead-lettered and remembered for the command.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.roles.appending import DLQ, REPLIES, Rig, make_rig, order, whole
from topics.envelope import NEW_AGGREGATE, Event, Metadata, new_event
from workers.examples.domains.cart import CART
from workers.ports import Head, MarkRequest, Record
from workers.roles.append.judge import (
    TRANSITION_REJECTED,
    WRONG_EXPECTED_VERSION,
    Waiting,
    judge,
)
from workers.roles.outcomes import Refused
from workers.roles.outcomes import decode as decode_outcome

ITEM = {"sku": "tea", "qty": 1, "unit_price_cents": 200}
WAIT_S = 2.0
H1, H2 = str(uuid.uuid4()), str(uuid.uuid4())
"""Ids of stored heads (versions 1 and 2) the events below name as their predecessors."""
HEAD = str(uuid.uuid4())


def added(after: str | None, expected: int | None, cart: str = "c1") -> Event:
    return new_event("cart", cart, "ItemAdded", ITEM, after=after, expected_version=expected)


def waiting(e: Event) -> Waiting:
    return Waiting(e, Record("events", 0, 0, e.key, b""), WAIT_S)


# --- the judge alone --------------------------------------------------------------------------


def test_of_two_events_expecting_the_head_the_first_is_stored_and_the_second_refused() -> None:
    head = Head(2, H2, "ItemAdded")
    first, second = added(H2, 2), added(H2, 2)
    verdicts = judge(CART, head, [waiting(first), waiting(second)], now=0)
    assert [w.event.id for w in verdicts.store] == [first.id]
    assert verdicts.head == Head(3, first.id, "ItemAdded")
    [refusal] = verdicts.refuse
    assert (refusal.waiting.event.id, refusal.reason, refusal.current_version) == (
        second.id, WRONG_EXPECTED_VERSION, 3,
    )  # fmt: skip
    assert refusal.message == (
        "cart c1 is at version 3, not at the expected 2; another writer appended first. "
        "Nothing was written: read it again and decide again. (checked at the store)"
    )


def test_zero_means_new_and_a_chain_of_expectations_is_stored_whole() -> None:
    opened = new_event("cart", "c1", "CartOpened", {"customer_id": "u"}, after=NEW_AGGREGATE,
                       expected_version=0)  # fmt: skip
    one, two = added(opened.id, 1), None
    two = added(one.id, 2)
    verdicts = judge(CART, None, [waiting(two), waiting(one), waiting(opened)], now=0)
    assert [w.event.id for w in verdicts.store] == [opened.id, one.id, two.id]  # chain order
    again = judge(CART, Head(1, H1, "CartOpened"), [waiting(opened)], now=0)
    assert [r.reason for r in again.refuse] == [WRONG_EXPECTED_VERSION]
    assert "cart c1 exists already (version 1)" in again.refuse[0].message


def test_the_expectation_is_judged_before_the_type() -> None:
    """A request decided on another version is refused as that, whatever its type: the
    transition it was checked against is not the aggregate's."""
    out = new_event("cart", "c1", "CartCheckedOut", {}, after=H1, expected_version=5)
    [refusal] = judge(CART, Head(1, H1, "CartOpened"), [waiting(out)], now=0).refuse
    assert (refusal.reason, refusal.current_version) == (WRONG_EXPECTED_VERSION, 1)
    right = new_event("cart", "c1", "CartCheckedOut", {}, after=H1, expected_version=1)
    [refusal] = judge(CART, Head(1, H1, "CartOpened"), [waiting(right)], now=0).refuse
    assert refusal.reason == TRANSITION_REJECTED


def test_an_expectation_ahead_of_the_store_is_refused_naming_the_head() -> None:
    ahead = added(H2, 7)  # the door's count ran ahead (a phantom, a refused event)
    [refusal] = judge(CART, Head(2, H2, "ItemAdded"), [waiting(ahead)], now=0).refuse
    assert refusal.current_version == 2
    assert refusal.message.startswith("cart c1 is at version 2, not yet at the expected 7")


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[int, list[Event]]:
    """Events of one cart at head version ``start``, each validated after the head or an event
    before it, each with an expectation near the truth or none, in any arrival order."""
    start = draw(st.integers(min_value=1, max_value=3))  # an ItemAdded may follow the head
    ids = [HEAD]
    events = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        after = draw(st.sampled_from(ids))
        expected = draw(st.none() | st.integers(min_value=max(0, start - 1), max_value=start + 8))
        event = added(after, expected)
        events.append(event)
        ids.append(event.id)
    return start, draw(st.permutations(events))


@settings(max_examples=300, deadline=None)
@given(interleavings())
def test_every_stored_event_is_at_the_version_after_its_expectation(
    case: tuple[int, list[Event]],
) -> None:
    start, events = case
    head = Head(start, HEAD, "ItemAdded")
    verdicts = judge(CART, head, [waiting(e) for e in events], now=WAIT_S)  # none waits
    assert not verdicts.wait
    for version, stored in enumerate(verdicts.store, start=start + 1):
        assert stored.event.expected_version in (None, version - 1)
    for refusal in verdicts.refuse:
        assert refusal.reason == WRONG_EXPECTED_VERSION
        assert refusal.current_version is not None
        assert refusal.waiting.event.expected_version != refusal.current_version
    seen = {w.event.id for w in verdicts.store} | {r.waiting.event.id for r in verdicts.refuse}
    assert seen == {e.id for e in events}  # each decided once


# --- the appender on memory adapters ----------------------------------------------------------


@pytest.fixture(params=["heads read", "new ones unread"])
def rig(request: pytest.FixtureRequest) -> Rig:
    return make_rig(whole if request.param == "new ones unread" else None)


def paid(after: str, expected: int, command: str) -> Event:
    return new_event("order", "o1", "OrderPaid", {"amount": 2}, after=after,
                     expected_version=expected, metadata=Metadata(command_id=command))  # fmt: skip


async def test_an_event_accepted_on_a_stale_count_is_refused_at_the_store_and_told(
    rig: Rig,
) -> None:
    """Two OrderPaid expecting version 1, both accepted at the door (the mark was lost between
    them and the store's head read trailed the first): one is stored, the other refused with
    the version the store holds; the refusal reaches the replies topic, the dead letters, the
    command memory (a retry is told it) and the mark."""
    placed = order("OrderPlaced", NEW_AGGREGATE)
    await rig.take([placed])
    first, second = paid(placed.id, 1, "pay-1"), paid(placed.id, 1, "pay-2")
    await rig.marker.check_and_mark(
        MarkRequest("order:o1", "OrderPaid", second.id, ["OrderPlaced"],
                    fallback=f"OrderPlaced|{placed.id}|1", expected_version=1)
    )  # fmt: skip
    await rig.take([first, second])
    assert await rig.history() == [("OrderPlaced", 1), ("OrderPaid", 2)]
    refusal = (await rig.rejections.find([second.id]))[second.id]
    assert (refusal.reason, refusal.current_version) == (WRONG_EXPECTED_VERSION, 2)
    assert refusal.message.startswith("order o1 is at version 2, not at the expected 1")
    [reply] = rig.producer.records(REPLIES)
    body = orjson.loads(reply.value)
    assert body["status"] == 409 and body["body"]["error"] == WRONG_EXPECTED_VERSION
    assert body["body"]["current_version"] == 2 and body["body"]["event_id"] == second.id
    [letter] = rig.producer.records(DLQ)
    assert dict(letter.headers)["dlq_reason"] == WRONG_EXPECTED_VERSION.encode()
    remembered = await rig.memory.recall("order:o1", "pay-2")
    assert remembered is not None
    told = decode_outcome(remembered.answer)
    assert isinstance(told, Refused) and told.at_store and told.code == WRONG_EXPECTED_VERSION
    assert told.details["current_version"] == 2
    # The mark named the refused event: it names the stored head again, with its version.
    assert rig.marker.value("order:o1") == f"OrderPaid|{first.id}||2"


async def test_zero_on_an_aggregate_that_exists_is_refused_even_when_its_head_was_not_read(
    rig: Rig,
) -> None:
    """With ``whole_in_hot`` the appender stores a chain that starts an aggregate without
    reading it: the version 1 insert conflicts, the head is read, and the judge refuses."""
    placed = order("OrderPlaced", NEW_AGGREGATE)
    await rig.take([placed])
    again = new_event("order", "o1", "OrderPlaced", {"items": [{"sku": "a", "qty": 1, "price": 1}]},
                      after=NEW_AGGREGATE, expected_version=0)  # fmt: skip
    decided = await rig.take([again])
    assert len(decided) == 1
    assert await rig.history() == [("OrderPlaced", 1)]
    refusal = (await rig.rejections.find([again.id]))[again.id]
    assert (refusal.reason, refusal.current_version) == (WRONG_EXPECTED_VERSION, 1)
    assert "exists already" in refusal.message
