"""Appends with an expected version on the command side's memory adapters (issue 47): true
answers in both modes, refusals the store confirms, retries answered as the original was.

The real services run the same cases, with the faults, in ``tests/e2e/test_expected_version*``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.orders import ITEMS
from tests.roles.commanding import EVENTS, Side, make_side, waiting_on_progress
from tests.waiting import wait_for, within
from topics.envelope import decode, derived_event_id
from workers.roles.command.requests import CommandRequest
from workers.runtime.answers import Answer, answer_of


@pytest.fixture
def side() -> Side:
    return make_side()


async def ask(
    side: Side, aggregate: str, kind: str, data: dict[str, Any], expected: int | None,
    command_id: str | None = None,
) -> Answer:  # fmt: skip
    aggregate_type, aggregate_id = aggregate.split(":")
    request = CommandRequest(
        aggregate_type, aggregate_id, kind, data, command_id=command_id, expected_version=expected
    )
    return answer_of(await side.service.handle(request))


def refused_as_stale(answer: Answer, *, expected: int, current: int) -> bool:
    body = answer.body
    return (
        answer.status == 409
        and body["error"] == "wrong_expected_version"
        and (body["expected_version"], body["current_version"]) == (expected, current)
        and "read it again and decide again" in str(body["message"])
    )


async def test_async_exact_stale_and_absent_expectations(side: Side) -> None:
    placed = await ask(side, "order:o1", "OrderPlaced", ITEMS, 0)
    assert placed.status == 202
    [record] = side.producer.records(EVENTS)
    assert decode(record.value).expected_version == 0  # the appender judges it again
    await side.stored_as_produced()
    again = await ask(side, "order:o1", "OrderPlaced", ITEMS, 0)
    assert refused_as_stale(again, expected=0, current=1)
    assert "order o1 exists already (version 1)" in str(again.body["message"])
    paid = await ask(side, "order:o1", "OrderPaid", {"amount": 2}, 1)
    assert paid.status == 202
    await side.stored_as_produced()
    late = await ask(side, "order:o1", "OrderCancelled", {"reason": "x"}, 1)
    assert refused_as_stale(late, expected=1, current=2)
    assert "order o1 is at version 2, not at the expected 1" in str(late.body["message"])
    unchecked = await ask(side, "order:o1", "OrderCancelled", {"reason": "x"}, None)
    assert unchecked.status == 202
    assert decode(side.producer.records(EVENTS)[-1].value).expected_version is None
    assert len(side.producer.records(EVENTS)) == 3  # the refused ones produced nothing


async def test_a_count_the_store_denies_is_marked_over_and_accepted(side: Side) -> None:
    """The mark counts 5 (a phantom's count: an event marked, never stored); the store's
    settled head is version 1, which the request expects: never a false 409."""
    await ask(side, "order:o2", "OrderPlaced", ITEMS, None)
    await side.stored_as_produced()
    placed_id = decode(side.producer.records(EVENTS)[0].value).id
    side.marker.plant("order:o2", f"OrderPaid|{derived_event_id('order', 'o2', 'x')}|-|5")
    paid = await ask(side, "order:o2", "OrderPaid", {"amount": 2}, 1)
    assert paid.status == 202, paid.body
    assert decode(side.producer.records(EVENTS)[-1].value).after == placed_id
    assert side.marker.value("order:o2").endswith("|2")  # counted from the store's head again


async def test_a_stale_count_is_no_refusal_until_the_store_has_caught_up(side: Side) -> None:
    await ask(side, "order:o3", "OrderPlaced", ITEMS, None)
    await side.stored_as_produced()
    await ask(side, "order:o3", "OrderPaid", {"amount": 2}, 1)  # produced, not yet stored
    behind = await ask(side, "order:o3", "OrderCancelled", {"reason": "x"}, 1)
    # The store's head is still version 1, as the request expects: the paid event may yet be
    # refused at the store, so neither 202 nor 409 would be sure.
    assert (behind.status, behind.body["error"]) == (503, "store_catching_up")
    await side.stored_as_produced()
    now = await ask(side, "order:o3", "OrderCancelled", {"reason": "x"}, 1)
    assert refused_as_stale(now, expected=1, current=2)


async def test_a_stale_count_is_refuted_once_the_store_holds_the_newer_event() -> None:
    """The appender has stored the paid event but not committed past it: a head past the
    expectation refutes it for good, so the wait ends there."""
    side = make_side(refusal_wait_s=60)
    await ask(side, "order:o5", "OrderPlaced", ITEMS, None)
    await side.stored_as_produced()
    await ask(side, "order:o5", "OrderPaid", {"amount": 2}, 1)  # produced, not yet stored
    behind = asyncio.ensure_future(ask(side, "order:o5", "OrderCancelled", {"reason": "x"}, 1))
    await wait_for(waiting_on_progress(side), timeout_s=10, what="the refusal waiting")
    await side.store_produced()
    answer = await within(behind, timeout_s=10, what="the stale count refuted")
    assert refused_as_stale(answer, expected=1, current=2)
    assert len(side.producer.records(EVENTS)) == 2


async def test_a_stored_head_past_the_expectation_refutes_it_without_waiting(side: Side) -> None:
    await ask(side, "order:o4", "OrderPlaced", ITEMS, None)
    await ask(side, "order:o4", "OrderPaid", {"amount": 2}, None)
    await side.stored_as_produced()
    await ask(side, "order:o4", "OrderShipped", {"carrier": "dhl"}, None)  # in flight
    stale = await ask(side, "order:o4", "OrderCancelled", {"reason": "x"}, 1)
    assert refused_as_stale(stale, expected=1, current=2)  # versions only grow: true for good


async def test_a_retry_of_a_stored_command_is_a_duplicate_not_a_refusal(side: Side) -> None:
    await ask(side, "order:o5", "OrderPlaced", ITEMS, 0, "place-1")
    await side.stored_as_produced()
    again = await ask(side, "order:o5", "OrderPlaced", ITEMS, 0, "place-1")
    assert again.status == 202 and again.body["duplicate"] is True and again.body["version"] == 1
    side.marker.lose_everything()  # Redis lost the record and the mark: the store answers
    lost = await ask(side, "order:o5", "OrderPlaced", ITEMS, 0, "place-1")
    assert lost.status == 202 and lost.body["duplicate"] is True and lost.body["version"] == 1
    assert len(side.producer.records(EVENTS)) == 1


async def test_a_door_refusal_is_remembered_for_the_outcome_and_judged_again_on_retry(
    side: Side,
) -> None:
    await ask(side, "order:o6", "OrderPlaced", ITEMS, None)
    await side.stored_as_produced()
    refused = await ask(side, "order:o6", "OrderPaid", {"amount": 2}, 4, "pay-1")
    assert refused_as_stale(refused, expected=4, current=1)
    asked = await side.outcomes.ask("order", "o6", command_id="pay-1")
    assert asked is not None and (asked["outcome"], asked["reason"]) == (
        "rejected", "wrong_expected_version",
    )  # fmt: skip
    retry = await ask(side, "order:o6", "OrderPaid", {"amount": 2}, 1, "pay-1")
    assert retry.status == 202  # a refusal at the door is not the command's fate


async def test_sync_exact_stale_retry_and_new(side: Side) -> None:
    opened = await ask(side, "account:a1", "AccountOpened", {"owner": "ann"}, 0, "open-1")
    assert (opened.status, opened.body["version"]) == (201, 1)
    [stored] = await side.store.select(("account", "a1"))
    assert stored.expected_version == 0
    deposit = await ask(side, "account:a1", "MoneyDeposited", {"amount": 5}, 1, "dep-1")
    assert (deposit.status, deposit.body["version"]) == (201, 2)
    stale = await ask(side, "account:a1", "MoneyDeposited", {"amount": 5}, 1, "dep-2")
    assert refused_as_stale(stale, expected=1, current=2)
    retry = await ask(side, "account:a1", "MoneyDeposited", {"amount": 5}, 1, "dep-1")
    assert retry.status == 201 and retry.body == {
        "event_id": deposit.body["event_id"], "version": 2, "duplicate": True,
    }  # fmt: skip
    side.marker.lose_everything()  # no record of dep-1: the store's copy answers the retry
    lost = await ask(side, "account:a1", "MoneyDeposited", {"amount": 5}, 1, "dep-1")
    assert lost.status == 201 and lost.body["duplicate"] is True
    ahead = await ask(side, "account:a2", "AccountOpened", {"owner": "bo"}, 3)
    assert refused_as_stale(ahead, expected=3, current=0)
    assert [e.version for e in await side.store.select(("account", "a1"))] == [1, 2]
    assert await side.store.select(("account", "a2")) == []
