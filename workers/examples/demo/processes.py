"""The demo's proof of its process manager, ``order_lifecycle``: what it did to each order, read
from the store, against what it had to do.

Every order has its instance; an order left unpaid (and not cancelled by its client) is
cancelled by its deadline, once; an order paid before its deadline fired has its shipment
requested, once; a deadline never cancels an order twice, and an order that ended has its
instance done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from topics.envelope import Event
from topics.jsonvalue import JsonObject
from workers.ports import DONE
from workers.runtime.compose import Runtime

PROCESS = "order_lifecycle"
PRINCIPAL = f"pm:{PROCESS}"
ENDS = ("OrderCancelled", "OrderDelivered")


def by_manager(event: Event) -> bool:
    actor = event.metadata.actor
    return actor is not None and actor.principal == PRINCIPAL


async def process_problems(rt: Runtime, orders: Sequence[str]) -> list[str]:
    """What ``order_lifecycle`` has not done (yet), or did twice, for ``orders``."""
    histories = await asyncio.gather(*(rt.events.select(("order", o)) for o in orders))
    shipments = await asyncio.gather(*(rt.events.select(("shipment", o)) for o in orders))
    instances = await rt.stores.processes.load(PROCESS, orders)
    problems = []
    for order, history, shipped in zip(orders, histories, shipments, strict=True):
        types = [e.type for e in history]
        cancels = [e for e in history if e.type == "OrderCancelled" and by_manager(e)]
        by_client = any(e.type == "OrderCancelled" and not by_manager(e) for e in history)
        requested = [e for e in shipped if by_manager(e)]
        want_shipped = 1 if "OrderPaid" in types and not cancels else 0
        instance = instances.get(order)
        if instance is None:
            problems.append(f"process: order {order} has no {PROCESS} instance")
        elif any(t in ENDS for t in types) and instance.status != DONE:
            problems.append(f"process: order {order} ended and its instance is {instance.status}")
        if len(cancels) > 1:
            problems.append(f"process: order {order} was cancelled {len(cancels)} times by it")
        if "OrderPaid" not in types and not by_client and not cancels:
            problems.append(f"process: order {order} is unpaid and not cancelled by its deadline")
        if len(requested) != want_shipped:
            problems.append(
                f"process: order {order} has {len(requested)} shipment requests, not {want_shipped}"
            )
    return problems


async def process_facts(rt: Runtime, orders: Sequence[str]) -> JsonObject:
    """What ``order_lifecycle`` did, for the summary."""
    histories = await asyncio.gather(*(rt.events.select(("order", o)) for o in orders))
    instances = await rt.stores.processes.load(PROCESS, orders)
    fired = [f for i in instances.values() for f in i.fired]
    late = max(((f.fired_at - f.due_at).total_seconds() for f in fired), default=0.0)
    shipped = sum(1 for h in histories if "OrderPaid" in [e.type for e in h] and not _cancelled(h))
    return {
        "process manager: deadlines fired": len(fired),
        "  orders it cancelled": sum(1 for h in histories if _cancelled(h)),
        "  shipments it requested": shipped,
        "  latest deadline fired": f"{late:.2f} s after due",
    }


def _cancelled(history: Sequence[Event]) -> bool:
    return any(e.type == "OrderCancelled" and by_manager(e) for e in history)
