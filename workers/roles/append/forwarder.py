"""The forwarder's logic: produce each stored event to its domain's routed downstream topics.

Downstream topics carry the current schema version of every event (upcast; an event already
current keeps its original bytes) and, besides each stored event, the events its domain
derives from it (``Domain.derive``, e.g. a storage mapper's ``UserEmailChanged``) as records
of their own type: stored once, routed as their own records, keyed like their source so the
aggregate's order holds. An event whose upcaster fails is dead-lettered (``upcast_failed``).
"""

from __future__ import annotations

from collections.abc import Sequence

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames
from topics.envelope import Event
from topics.errors import ReplayFailed
from workers import tracing
from workers.metrics import Metrics
from workers.ports import Outgoing, Producer, Record
from workers.roles.deadletter import DeadLetter, DeadLetters


class Forwarder:
    """Routes stored events downstream with their key and correlation headers intact."""

    def __init__(
        self,
        *,
        producer: Producer,
        domains: Domains,
        names: TopicNames,
        metrics: Metrics,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self._producer = producer
        self._domains = domains
        self._names = names
        self._metrics = metrics
        self._dead_letters = dead_letters

    def routes(self, event: Event) -> list[str]:
        if event.aggregate_type not in self._domains:
            return []  # e.g. a storage collection declared without a storage_domain
        domain = self._domains.get(event.aggregate_type)
        return [self._names.name(r.topic) for r in domain.routes if r.matches(event.type)]

    def outgoing(self, event: Event, record: Record) -> list[tuple[Event, Outgoing]]:
        """The records one stored event becomes downstream: itself (current version), then derived.

        Raises ReplayFailed when the event cannot be upcast.
        """
        if event.aggregate_type not in self._domains:
            return []
        domain = self._domains.get(event.aggregate_type)
        current = domain.upcast(event)
        own = (
            Outgoing(record.key, record.value, record.headers)
            if current is event
            else _carried(Outgoing.of(current), record)
        )
        return [
            (current, own),
            *((d, _carried(Outgoing.of(d), record)) for d in domain.derived(current)),
        ]

    async def handle(self, events: Sequence[tuple[Event, Record]]) -> int:
        """Produce every routed copy, then wait for all acks; return how many were sent."""
        by_topic: dict[str, list[Outgoing]] = {}
        letters: list[DeadLetter] = []
        for event, record in events:
            try:
                pairs = self.outgoing(event, record)
            except ReplayFailed as e:
                letters.append(DeadLetter(record, "upcast_failed", str(e)))
                continue
            for item, message in pairs:
                for topic in self.routes(item):
                    by_topic.setdefault(topic, []).append(message)
        if letters and self._dead_letters is not None:
            await self._dead_letters.send(letters)
        for topic, messages in by_topic.items():
            await self._producer.send_many(topic, messages)
            self._metrics.events_forwarded.labels(topic).inc(len(messages))
        return sum(len(messages) for messages in by_topic.values())


def _carried(message: Outgoing, record: Record) -> Outgoing:
    """A rewritten or derived record keeps the trace context of the stored event's record."""
    if not tracing.enabled():
        return message
    return Outgoing(message.key, message.value, tracing.carried(message.headers, record.headers))
