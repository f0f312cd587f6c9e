"""Stored events that still have to reach ``events.stored``: publish now, or relay later.

Writers that store before they publish (sync mode, EventSourcedStorage) append with
``pending_publish``; ``publish`` produces the events and clears the flag. If Kafka is
down the flag stays, and the relay loop republishes every flagged event once Kafka
answers again, so a stored event always reaches the stream (at least once; consumers
are idempotent by event id and version).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from topics.envelope import Event, utc_now
from topics.errors import Unavailable
from workers.metrics import Metrics
from workers.ports import Outgoing, PendingEvents, Producer

log = logging.getLogger(__name__)


class Outbox:
    """Publishes stored events to events.stored and repairs the ones Kafka missed."""

    def __init__(
        self,
        store: PendingEvents,
        producer: Producer,
        *,
        topic: str,
        metrics: Metrics,
        mode: str,
    ) -> None:
        self._store = store
        self._producer = producer
        self._topic = topic
        self._published = metrics.events_published.labels(mode)

    async def publish(self, events: Sequence[Event]) -> None:
        """Produce ``events`` (already stored with the pending flag), then clear the flag.

        Raises StreamUnavailable when Kafka does not acknowledge: the events stay
        flagged and the relay publishes them later.
        """
        await self._producer.send_many(self._topic, [Outgoing.of(event) for event in events])
        self._published.inc(len(events))
        await self._store.clear_pending([event.id for event in events])

    async def relay_once(self, *, older_than_s: float = 2.0, limit: int = 500) -> int:
        """Publish flagged events older than ``older_than_s``; return how many."""
        cutoff = utc_now() - timedelta(seconds=older_than_s)
        events = await self._store.pending(older_than=cutoff, limit=limit)
        if events:
            await self.publish(events)
            log.info("relayed %d stored events to %s", len(events), self._topic)
        return len(events)

    async def run(self, *, older_than_s: float, interval_s: float = 1.0) -> None:
        """Relay forever; a dependency that is down only delays the next round.

        ``older_than_s`` must exceed a writer's own publish attempt (1.5 x the Kafka
        timeout), or the relay could publish an event whose first attempt is still running.
        """
        while True:
            try:
                while await self.relay_once(older_than_s=older_than_s) > 0:
                    pass
            except Unavailable as e:
                log.warning("outbox relay waits: %s", e)
            await asyncio.sleep(interval_s)
