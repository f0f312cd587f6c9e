"""Example domain **shipment** (async): what the warehouse is asked to ship, one per order.

The ``order_lifecycle`` process manager requests a shipment once an order is paid; only a
principal with the ``fulfilment`` role may request one (the process manager's principal,
``pm:order_lifecycle``, declares it), so the access rules decide for it as for anyone.
"""

from __future__ import annotations

from snapshot_rules.access import Access, send_with_roles
from snapshot_rules.domain import NEW, Domain, event
from snapshot_rules.replay import State
from snapshot_rules.schema import Text, fields
from topics.envelope import Event

FULFILMENT = "fulfilment"
"""The role that may request a shipment."""


def reduce_shipment(state: State | None, event: Event) -> State:
    if event.type == "ShipmentRequested":
        return {"status": "requested", "order_id": event.data["order_id"]}
    if event.type == "ShipmentDispatched":
        return {**(state or {}), "status": "dispatched", "carrier": event.data["carrier"]}
    return dict(state or {})


SHIPMENT = Domain(
    name="shipment",
    events={
        "ShipmentRequested": event(fields(order_id=Text(max_length=128)), after=[NEW]),
        "ShipmentDispatched": event(
            fields(carrier=Text(max_length=64)), after=["ShipmentRequested"]
        ),
    },
    reducer=reduce_shipment,
    access=Access(send={"ShipmentRequested": send_with_roles(FULFILMENT)}),
)
