"""The process managers the end-to-end tests run (``EVENTFLEET_PROCESSES``): the example
``order_lifecycle`` with a payment deadline of seconds, and ``deliverer``, whose command is
refused until the order is shipped (orders named ``deliver-…`` only)."""

from __future__ import annotations

from snapshot_rules.process import Processes, ProcessManager, Reaction, Send, State
from topics.envelope import Event
from workers.examples.domains.order_lifecycle import order_lifecycle

PAYMENT_S = 3.0
"""An unpaid order is cancelled this long after it was placed."""
DOWN_PAYMENT_S = 8.0
"""``slow_processes``: long enough to take the role down before a deadline is due."""


def deliver(state: State | None, event: Event) -> Reaction:
    if not event.aggregate_id.startswith("deliver-"):
        return Reaction({}, done=True)
    if event.type == "OrderPaid":
        return Reaction({"paid": True}, send=[Send("order", event.aggregate_id, "OrderDelivered")])
    return Reaction({"paid": False})


DELIVERER = ProcessManager(
    name="deliverer",
    starts_on={"order": ["OrderPlaced"]},
    advances_on={"order": ["OrderPaid"]},
    key=lambda event: event.aggregate_id,
    react=deliver,
    sends={"order": ["OrderDelivered"]},
)


def processes() -> Processes:
    return Processes([order_lifecycle(payment_s=PAYMENT_S), DELIVERER])


def slow_processes() -> Processes:
    return Processes([order_lifecycle(payment_s=DOWN_PAYMENT_S)])
