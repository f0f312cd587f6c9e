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
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from topics.envelope import Event, store_position, utc_now
from topics.errors import Unavailable
from workers import tracing
from workers.metrics import Metrics
from workers.ports import AggregateRef, Outgoing, PendingEvents, Producer

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
        self._locks: dict[AggregateRef, tuple[asyncio.Lock, int]] = {}  # lock, users
        self._producer = producer
        self._topic = topic
        self._published = metrics.events_published.labels(mode)

    async def publish(self, events: Sequence[Event], *, earlier_first: bool = True) -> None:
        """Produce ``events`` (already stored with the pending flag), then clear the flag.

        Still-flagged earlier versions of the same aggregates go first (``earlier_first``).
        Raises StreamUnavailable when Kafka does not acknowledge: the events stay
        flagged and the relay publishes them later.
        """
        refs = sorted({(event.aggregate_type, event.aggregate_id) for event in events})
        async with self._serialized(refs):
            if earlier_first:
                events = await self._with_earlier(events)
            if tracing.enabled():
                await self._traced(events)
            else:
                await self._producer.send_many(self._topic, [Outgoing.of(e) for e in events])
            self._published.inc(len(events))
            await self._store.clear_pending([event.id for event in events])

    async def _traced(self, events: Sequence[Event]) -> None:
        """Publish with one producer span per event, in the trace its metadata names (the
        request's, current in sync mode; the relay's later rounds continue it by its id)."""
        spans = [
            tracing.start(
                f"{self._topic} publish",
                parent=tracing.parent_for(e.metadata.trace_id, e.id),
                kind=tracing.SpanKind.PRODUCER,
                attributes={"eventfleet.event_id": e.id, "eventfleet.version": e.version or 0},
            )
            for e in events
        ]
        messages = []
        for e, span in zip(events, spans, strict=True):
            own = Outgoing.of(e)
            messages.append(Outgoing(own.key, own.value, tracing.with_context(own.headers, span)))
        try:
            await self._producer.send_many(self._topic, messages)
        finally:
            tracing.end(spans)

    @asynccontextmanager
    async def _serialized(self, refs: list[AggregateRef]) -> AsyncIterator[None]:
        """One publish per aggregate at a time in this process.

        A writer of v5 waits until this process's publish of v4 is done; then v4 is either on
        the stream (and unflagged) or still flagged and sent first, never twice by us.
        """
        for ref in refs:
            lock, users = self._locks.get(ref, (asyncio.Lock(), 0))
            self._locks[ref] = (lock, users + 1)
        try:
            async with AsyncExitStack() as stack:
                for ref in refs:  # sorted order: no two publishes wait for each other
                    await stack.enter_async_context(self._locks[ref][0])
                yield
        finally:
            for ref in refs:
                lock, users = self._locks[ref]
                if users == 1:
                    del self._locks[ref]
                else:
                    self._locks[ref] = (lock, users - 1)

    async def _with_earlier(self, events: Sequence[Event]) -> list[Event]:
        """``events`` preceded by any still-flagged earlier versions of their aggregates.

        Another writer's earlier version may still wait for Kafka (its attempt timed out, or
        its process died); publishing ours first would put a later version before it on
        events.stored. So the earlier ones go first, in version order: every first copy of a
        version is in order, on every topic, whatever copies the relay sends later.
        """
        first: dict[tuple[str, str], int] = {}
        for event in events:
            ref = (event.aggregate_type, event.aggregate_id)
            first[ref] = min(first.get(ref, event.version or 0), event.version or 0)
        earlier: list[Event] = []
        for ref, version in first.items():
            earlier += await self._store.pending_before(ref, version)
        if not earlier:
            return list(events)
        merged = {event.id: event for event in earlier}
        merged.update((event.id, event) for event in events)
        return sorted(merged.values(), key=store_position)

    async def relay_once(self, *, older_than_s: float = 2.0, limit: int = 500) -> int:
        """Publish flagged events older than ``older_than_s``; return how many."""
        cutoff = utc_now() - timedelta(seconds=older_than_s)
        events = await self._store.pending(older_than=cutoff, limit=limit)
        if events:
            # Oldest first, by aggregate and version: nothing earlier is left behind.
            await self.publish(events, earlier_first=False)
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
