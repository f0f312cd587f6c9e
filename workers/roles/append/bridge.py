"""The bridge: events.stored republished to a Redis or NATS bus, for subscribers outside Kafka.

Each stored event goes to the bus as the current schema version of its type, followed by the
events its domain derives from it (a storage mapper's ``UserEmailChanged``) as events of their
own type, so ``bus.subscribe("UserEmailChanged", ...)`` works like any other subscription.
At least once: the agent acks a batch only after the bus took all of it; a bus that does not
answer pauses the role and the batch is published again (subscribers dedupe by event id, as
on every durable bus). An event whose upcaster fails is dead-lettered (``upcast_failed``).
"""

from __future__ import annotations

from collections.abc import Sequence

from snapshot_rules.domain import Domains
from topics.envelope import Event
from topics.errors import ReplayFailed
from workers.metrics import Metrics
from workers.ports import EventBus, Record
from workers.roles.deadletter import DeadLetter, DeadLetters


class Bridge:
    """Publishes stored events, and what their domains derive from them, on an event bus."""

    def __init__(
        self,
        *,
        bus: EventBus,
        bus_name: str,
        domains: Domains,
        metrics: Metrics,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.bus = bus
        self._domains = domains
        self._bridged = metrics.events_bridged.labels(bus_name)
        self._dead_letters = dead_letters

    def outgoing(self, event: Event) -> list[Event]:
        """What one stored event becomes on the bus; raises ReplayFailed if it cannot be upcast.

        An aggregate type no enabled domain declares goes as it was stored.
        """
        if event.aggregate_type not in self._domains:
            return [event]
        domain = self._domains.get(event.aggregate_type)
        current = domain.upcast(event)
        return [current, *domain.derived(current)]

    async def handle(self, events: Sequence[tuple[Event, Record]]) -> int:
        """Publish the batch in order; return how many bus events it made."""
        letters: list[DeadLetter] = []
        published = 0
        for event, record in events:
            try:
                items = self.outgoing(event)
            except ReplayFailed as e:
                letters.append(DeadLetter(record, "upcast_failed", str(e)))
                continue
            for item in items:
                await self.bus.publish(item)
                self._bridged.inc()
                published += 1
        if letters and self._dead_letters is not None:
            await self._dead_letters.send(letters)
        return published
