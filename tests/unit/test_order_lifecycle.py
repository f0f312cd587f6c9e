"""The example process manager ``order_lifecycle``, pure: its reactions without a service."""

from __future__ import annotations

from datetime import UTC, datetime

from snapshot_rules.process import Due, Processes, Send, SetDeadline, check_reaction
from topics.envelope import new_event
from workers.examples.domains import default_domains, default_processes, demo_processes
from workers.examples.domains.order_lifecycle import (
    DEMO_PAYMENT_S,
    PAYMENT,
    PAYMENT_S,
    UNPAID,
    order_lifecycle,
)

PM = order_lifecycle()
AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_it_is_declared_against_the_example_domains() -> None:
    for processes in (default_processes(), demo_processes()):
        processes.check(default_domains())
    assert isinstance(default_processes(), Processes)
    assert PM.actor().principal == "pm:order_lifecycle" and "fulfilment" in PM.actor().roles


def test_placed_sets_the_payment_deadline() -> None:
    reaction = check_reaction(
        PM, PM.react(None, new_event("order", "o1", "OrderPlaced", {}, version=1))
    )
    assert reaction.state == {"order_id": "o1", "status": "awaiting_payment"}
    assert reaction.set_deadlines == (SetDeadline(PAYMENT, PAYMENT_S),)
    assert not reaction.send and not reaction.done
    demo = next(iter(demo_processes()))
    placed = demo.react(None, new_event("order", "o1", "OrderPlaced", {}, version=1))
    assert placed.set_deadlines == (SetDeadline(PAYMENT, DEMO_PAYMENT_S),)


def test_paid_cancels_the_deadline_and_requests_the_shipment() -> None:
    state = {"order_id": "o1", "status": "awaiting_payment"}
    reaction = check_reaction(
        PM, PM.react(state, new_event("order", "o1", "OrderPaid", {}, version=2))
    )
    assert reaction.cancel_deadlines == (PAYMENT,)
    assert reaction.send == (Send("shipment", "o1", "ShipmentRequested", {"order_id": "o1"}),)
    assert reaction.state["status"] == "shipping" and not reaction.done


def test_a_due_payment_deadline_cancels_an_unpaid_order_only() -> None:
    assert PM.on_deadline is not None
    due = Due(PAYMENT, "d1", AT)
    unpaid = check_reaction(
        PM, PM.on_deadline({"order_id": "o1", "status": "awaiting_payment"}, due)
    )
    assert unpaid.send == (Send("order", "o1", "OrderCancelled", {"reason": UNPAID}),)
    paid = PM.on_deadline({"order_id": "o1", "status": "shipping"}, due)
    assert paid.send == () and paid.state["status"] == "shipping"


def test_a_payment_after_the_deadline_fired_ships_nothing() -> None:
    cancelling = {"order_id": "o1", "status": "cancelling"}
    reaction = PM.react(cancelling, new_event("order", "o1", "OrderPaid", {}, version=2))
    assert reaction.send == () and reaction.state == cancelling


def test_cancelled_or_delivered_ends_the_instance() -> None:
    for kind in ("OrderCancelled", "OrderDelivered"):
        event = new_event("order", "o1", kind, {"reason": "r"}, version=3)
        assert PM.phase(event) == "end"
        reaction = PM.react({"order_id": "o1", "status": "shipping"}, event)
        assert reaction.done and reaction.cancel_deadlines == (PAYMENT,)
