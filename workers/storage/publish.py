"""Delivery of stored events after their change commits: events.stored (outbox), then the bus.

Nothing here raises. The change and its event are stored, flagged ``pending_publish``;
a caller who saw an error would apply the change again. An event the outbox could not
publish keeps its flag and the fleet's outbox relay publishes it later; the bus gives
the guarantee of its kind (see ``workers.bus``).
"""

from __future__ import annotations

import logging

from topics.envelope import Event
from workers.ports import EventBus
from workers.roles.append.outbox import Outbox
from workers.storage.mappers import derived_events

log = logging.getLogger(__name__)


async def publish_change(event: Event, *, outbox: Outbox | None, bus: EventBus | None) -> bool:
    """Publish one stored change event: to events.stored, then it and its domain events to the
    bus. True when the outbox put the event on events.stored (else the relay will)."""
    published = False
    if outbox is not None:
        try:
            await outbox.publish([event])
            published = True
        except Exception as e:  # broad on purpose: see the module docstring
            log.warning("event %s stays flagged for the outbox relay: %s", event.id, e)
    if bus is not None:
        for item in [event, *derived_events(event)]:
            try:
                await bus.publish(item)
            except Exception as e:
                log.warning("the bus did not take %s %s: %s", item.type, item.id, e)
    return published
