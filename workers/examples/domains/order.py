"""Example domain **order** (async, marker-validated)."""

from __future__ import annotations

from snapshot_rules.domain import NEW, Domain, Route, event
from snapshot_rules.replay import State
from snapshot_rules.rules import every, on
from snapshot_rules.schema import ListOf, Number, Text, fields
from topics.envelope import Event

MAX_QTY = 1_000_000
MAX_PRICE = 1_000_000_000
MAX_ITEMS = 1000
"""Bounds that keep every total (qty x price, summed) far inside a 64-bit integer."""
ITEM = fields(
    sku=Text(max_length=64),
    qty=Number(positive=True, integer=True, maximum=MAX_QTY),
    price=Number(minimum=0, maximum=MAX_PRICE),
)


def reduce_order(state: State | None, event: Event) -> State:
    data = event.data
    current = dict(state or {})
    if event.type == "OrderPlaced":
        items = [dict(item) for item in data["items"]]
        total = sum(item["qty"] * item["price"] for item in items)
        return {"status": "placed", "items": items, "total": total}
    if event.type == "OrderPaid":
        return {**current, "status": "paid", "paid": data["amount"]}
    if event.type == "OrderShipped":
        return {**current, "status": "shipped", "carrier": data["carrier"]}
    if event.type == "OrderDelivered":
        return {**current, "status": "delivered"}
    if event.type == "OrderCancelled":
        return {**current, "status": "cancelled", "reason": data["reason"]}
    return current


ORDER = Domain(
    name="order",
    events={
        "OrderPlaced": event(
            fields(items=ListOf(ITEM, min_items=1, max_items=MAX_ITEMS)), after=[NEW]
        ),
        "OrderPaid": event(
            fields(amount=Number(positive=True, maximum=MAX_QTY * MAX_PRICE * MAX_ITEMS)),
            after=["OrderPlaced"],
        ),
        "OrderShipped": event(fields(carrier=Text(max_length=64)), after=["OrderPaid"]),
        "OrderDelivered": event(after=["OrderShipped"]),
        "OrderCancelled": event(fields(reason=Text()), after=["OrderPlaced", "OrderPaid"]),
    },
    reducer=reduce_order,
    snapshot_rule=every(50) | on({"OrderDelivered", "OrderCancelled"}),
    routes=(Route("orders"),),
)
