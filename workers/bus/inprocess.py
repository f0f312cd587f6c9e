"""The in-process event bus: handlers run inside ``publish``, in the publishing process.

Guarantee: at-most-once -- a failing handler is logged and the event is not retried.

Nothing is stored: a subscriber that is not subscribed at publish time never sees the
event, and a crash loses whatever was in flight. Use it in tests and single-process
tools; use a durable bus (Redis, NATS, Kafka) where an event must not be lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from topics.envelope import Event
from workers.bus.common import BusClosed, check_event_type, matches, require_stored
from workers.ports import Handler, Subscription

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class _Entry:
    event_type: str
    handler: Handler
    active: bool = field(default=True)


class InProcessEventBus:
    """Calls every matching handler concurrently inside ``publish``; failures are only logged."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._closed = False

    async def publish(self, event: Event) -> None:
        """Run the matching handlers and return when all of them finished or failed."""
        self._check_open()
        require_stored(event)
        targets = [e for e in self._entries if e.active and matches(e.event_type, event)]
        if not targets:
            return
        results = await asyncio.gather(
            *(entry.handler(event) for entry in targets), return_exceptions=True
        )
        for entry, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation or interpreter exit is not a handler failure
            if isinstance(result, Exception):
                log.error(
                    "in-process bus: handler %r failed on event %s (%s); not retried: %r",
                    entry.handler,
                    event.id,
                    event.type,
                    result,
                )

    async def subscribe(self, event_type: str, handler: Handler) -> Subscription:
        """Receive every event of ``event_type`` (``"*"``: all) published from now on."""
        self._check_open()
        entry = _Entry(check_event_type(event_type), handler)
        self._entries.append(entry)

        async def cancel() -> None:
            entry.active = False
            if entry in self._entries:
                self._entries.remove(entry)

        return Subscription(cancel=cancel)

    async def close(self) -> None:
        for entry in self._entries:
            entry.active = False
        self._entries.clear()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosed("the in-process event bus is closed; create a new one")
