"""Example process manager **order_lifecycle**: cancel an order left unpaid, ship a paid one.

``OrderPlaced`` starts an instance (keyed by the order id) and sets a ``payment`` deadline;
``OrderPaid`` cancels it and requests the shipment (``shipment.ShipmentRequested``); the deadline,
if it comes due first, sends ``OrderCancelled`` (a payment that comes after that ships nothing);
an ``OrderCancelled`` or ``OrderDelivered`` ends the instance. Pure: ``react`` and
``on_deadline`` are tested without a service.
"""

from __future__ import annotations

from functools import partial

from snapshot_rules.process import Due, ProcessManager, Reaction, Send, SetDeadline, State
from topics.envelope import Event
from workers.examples.domains.shipment import FULFILMENT

PAYMENT = "payment"
PAYMENT_S = 15 * 60.0
"""An order not paid within 15 minutes of being placed is cancelled."""
DEMO_PAYMENT_S = 4.0
"""``eventfleet dev --demo``: 4 seconds, so the demo sees unpaid orders cancelled."""
UNPAID = "payment deadline passed"


def order_id(event: Event) -> str:
    return event.aggregate_id


def react(state: State | None, event: Event, *, payment_s: float) -> Reaction:
    if event.type == "OrderPlaced":
        placed = {"order_id": event.aggregate_id, "status": "awaiting_payment"}
        return Reaction(placed, set_deadlines=[SetDeadline(PAYMENT, payment_s)])
    current = dict(state or {})
    if event.type == "OrderPaid" and current.get("status") == "cancelling":
        return Reaction(current)  # paid as its deadline cancelled it: no shipment for it
    if event.type == "OrderPaid":
        ship = Send(
            "shipment", event.aggregate_id, "ShipmentRequested", {"order_id": event.aggregate_id}
        )
        return Reaction({**current, "status": "shipping"}, send=[ship], cancel_deadlines=[PAYMENT])
    return Reaction({**current, "status": event.type}, cancel_deadlines=[PAYMENT], done=True)


def on_deadline(state: State, due: Due) -> Reaction:
    if due.name != PAYMENT or state.get("status") != "awaiting_payment":
        return Reaction(state)
    order = state.get("order_id")
    cancel = Send("order", str(order), "OrderCancelled", {"reason": UNPAID})
    return Reaction({**state, "status": "cancelling"}, send=[cancel])


def order_lifecycle(*, payment_s: float = PAYMENT_S) -> ProcessManager:
    """The process manager, with an unpaid order cancelled ``payment_s`` after it was placed."""

    return ProcessManager(
        name="order_lifecycle",
        starts_on={"order": ["OrderPlaced"]},
        advances_on={"order": ["OrderPaid"]},
        ends_on={"order": ["OrderCancelled", "OrderDelivered"]},
        key=order_id,
        react=partial(react, payment_s=payment_s),
        on_deadline=on_deadline,
        sends={"order": ["OrderCancelled"], "shipment": ["ShipmentRequested"]},
        roles=(FULFILMENT,),
    )
