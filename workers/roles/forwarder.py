"""The forwarder's logic: produce each stored event to its domain's routed downstream topics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames
from topics.envelope import Event
from workers.adapters.kafka import KafkaProducer
from workers.metrics import Metrics
from workers.roles.deadletter import Record


class Forwarder:
    """Routes stored events downstream with their key, bytes and correlation headers intact."""

    def __init__(
        self, *, producer: KafkaProducer, domains: Domains, names: TopicNames, metrics: Metrics
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
        pending: list[tuple[str, asyncio.Future[Any]]] = []
        for event, record in events:
            for topic in self.routes(event):
                future = await self._producer.enqueue(
                    topic, key=record.key, value=record.value, headers=record.headers
                )
                pending.append((topic, future))
        for topic, future in pending:
            await self._producer.delivered(topic, future)
            self._metrics.events_forwarded.labels(topic).inc()
        return len(pending)
