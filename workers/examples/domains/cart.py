"""Example domain **cart** (async, marker-validated): a shopping cart restored by replay.

Why events: a cart kept only as its last state is lost with the session; as events it can be
restored at any version or moment (``GET /v1/cart/{id}/state?as_of=...``).

The marker checks the order of events (a cart is opened first, nothing follows a checkout or
an abandonment); what needs the cart's contents is the fold's: removing or changing an item
the cart does not hold, or a 201st distinct item, changes nothing and is counted in
``ignored``.

``ItemAdded`` is at schema version 2: version 1 carried ``price`` as a decimal number of the
currency; version 2 carries ``unit_price_cents``, an integer, so totals are exact. Version 1
events stay as they were stored and are read as version 2 (``price_in_cents``).
"""

from __future__ import annotations

from collections.abc import Mapping

from snapshot_rules.domain import NEW, Domain, Route, Upcast, event
from snapshot_rules.replay import State
from snapshot_rules.rules import every, on
from snapshot_rules.schema import Number, Text, fields
from topics.envelope import Event
from topics.jsonvalue import Json, JsonObject

OPEN, CHECKED_OUT, ABANDONED = "open", "checked_out", "abandoned"
MAX_QTY = 1000
MAX_PRICE_CENTS = 100_000_000
MAX_ITEMS = 200
"""Distinct items a cart holds; the state stays small and totals stay far inside 64 bits."""

_SKU = Text(max_length=64)
_QTY = Number(positive=True, integer=True, maximum=MAX_QTY)
_ITEM_V1 = fields(
    closed=True, sku=_SKU, qty=_QTY, price=Number(minimum=0, maximum=MAX_PRICE_CENTS / 100)
)
"""ItemAdded at schema version 1."""
_CHANGES = ["CartOpened", "ItemAdded", "ItemRemoved", "QuantityChanged"]
_FILLED = ["ItemAdded", "ItemRemoved", "QuantityChanged"]


def price_in_cents(data: Mapping[str, Json]) -> JsonObject:
    """ItemAdded schema version 1 -> 2: ``price`` (a decimal number) -> ``unit_price_cents``."""
    lifted = {k: v for k, v in data.items() if k != "price"}
    lifted["unit_price_cents"] = round(data["price"] * 100)
    return lifted


def reduce_cart(state: State | None, event: Event) -> State:
    """Fold one stored cart event; pure."""
    data = event.data
    if event.type == "CartOpened":
        return {
            "customer_id": data["customer_id"],
            "status": OPEN,
            "items": {},
            "total_cents": 0,
            "ignored": 0,
        }
    cart = dict(state or {"status": OPEN, "items": {}, "total_cents": 0, "ignored": 0})
    items: JsonObject = dict(cart["items"])
    if event.type == "CartCheckedOut":
        return {**cart, "status": CHECKED_OUT}
    if event.type == "CartAbandoned":
        return {**cart, "status": ABANDONED}
    sku: str = data.get("sku", "")
    if event.type == "ItemAdded" and (sku in items or len(items) < MAX_ITEMS):
        held = items.get(sku, {"qty": 0})
        qty = min(held["qty"] + data["qty"], MAX_QTY)
        items[sku] = {"qty": qty, "unit_price_cents": data["unit_price_cents"]}
    elif event.type == "ItemRemoved" and sku in items:
        del items[sku]
    elif event.type == "QuantityChanged" and sku in items:
        items[sku] = {**items[sku], "qty": data["qty"]}
    else:
        return {**cart, "ignored": cart["ignored"] + 1}
    total = sum(item["qty"] * item["unit_price_cents"] for item in items.values())
    return {**cart, "items": items, "total_cents": total}


CART = Domain(
    name="cart",
    events={
        "CartOpened": event(fields(closed=True, customer_id=Text(max_length=128)), after=[NEW]),
        "ItemAdded": event(
            fields(
                closed=True,
                sku=_SKU,
                qty=_QTY,
                unit_price_cents=Number(integer=True, minimum=0, maximum=MAX_PRICE_CENTS),
            ),
            after=_CHANGES,
            upcasts=[Upcast(_ITEM_V1, price_in_cents)],
        ),
        "ItemRemoved": event(fields(closed=True, sku=_SKU), after=_CHANGES),
        "QuantityChanged": event(fields(closed=True, sku=_SKU, qty=_QTY), after=_CHANGES),
        "CartCheckedOut": event(fields(closed=True), after=_FILLED),
        "CartAbandoned": event(fields(closed=True), after=_CHANGES),
    },
    reducer=reduce_cart,
    snapshot_rule=every(20) | on({"CartCheckedOut", "CartAbandoned"}),
    routes=(Route("carts"),),
)
