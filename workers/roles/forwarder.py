"""The forwarder's logic: produce each stored event to its domain's routed downstream topics."""

from __future__ import annotations

from collections.abc import Sequence

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames
from topics.envelope import Event
from workers.metrics import Metrics
from workers.ports import Outgoing, Producer, Record


class Forwarder:
    """Routes stored events downstream with their key, bytes and correlation headers intact."""

    def __init__(
        self, *, producer: Producer, domains: Domains, names: TopicNames, metrics: Metrics
    ) -> None:
        self._producer = producer
        self._domains = domains
        self._names = names
        self._metrics = metrics

    def routes(self, event: Event) -> list[str]:
        if event.aggregate_type not in self._domains:
            return []  # e.g. a storage collection declared without a storage_domain
        domain = self._domains.get(event.aggregate_type)
        return [self._names.name(r.topic) for r in domain.routes if r.matches(event.type)]

    async def handle(self, events: Sequence[tuple[Event, Record]]) -> int:
        """Produce every routed copy, then wait for all acks; return how many were sent."""
        by_topic: dict[str, list[Outgoing]] = {}
        for event, record in events:
            for topic in self.routes(event):
                message = Outgoing(record.key, record.value, record.headers)
                by_topic.setdefault(topic, []).append(message)
        for topic, messages in by_topic.items():
            await self._producer.send_many(topic, messages)
            self._metrics.events_forwarded.labels(topic).inc(len(messages))
        return sum(len(messages) for messages in by_topic.values())
