"""The appender's logic: decode a batch, drop what is stored, number, bulk-insert, publish.

Called by the appender agent with one batch of ``events`` records; it returns only when
every event of the batch is stored and on ``events.stored`` (or dead-lettered), so the
agent may then let the offsets commit. Any Unavailable error leaves the batch unacked
to be retried whole: dedupe by event id makes the retry harmless.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from snapshot_rules.domain import Domains, Mode
from topics.envelope import Event
from topics.errors import StoreUnavailable
from workers.metrics import Metrics
from workers.ports import AggregateRef, AppendConflict, EventStore, Outgoing, Producer, Record
from workers.roles.deadletter import DeadLetter, DeadLetters, decode_record

MAX_CONFLICT_ROUNDS = 20
VERSION_CACHE_SIZE = 100_000


class Appender:
    """Turns requested events into stored, contiguous, versioned ones."""

    def __init__(
        self,
        *,
        store: EventStore,
        producer: Producer,
        dead_letters: DeadLetters,
        domains: Domains,
        stored_topic: str,
        metrics: Metrics,
        max_event_bytes: int,
    ) -> None:
        self._store = store
        self._producer = producer
        self._dead_letters = dead_letters
        self._domains = domains
        self._stored_topic = stored_topic
        self._metrics = metrics
        self._max_event_bytes = max_event_bytes
        # Last stored version per aggregate. It can only lag behind the store (another
        # appender wrote after a rebalance); the unique version index catches that.
        self._versions: OrderedDict[AggregateRef, int] = OrderedDict()

    async def handle(self, records: Sequence[Record]) -> list[Event]:
        """Store and publish one batch; return the events published to events.stored."""
        started = time.perf_counter()
        events, letters = self._decode(records)
        if letters:
            await self._dead_letters.send(letters)
        unique = list({event.id: event for event in reversed(events)}.values())[::-1]
        self._metrics.duplicates_dropped.inc(len(events) - len(unique))
        # No lookup in the steady state: the unique event-id index reports a redelivery,
        # and the first one makes _append look up the rest of the batch at once.
        stored: dict[str, Event] = {}
        numbered = await self._append(unique, stored)
        self._metrics.duplicates_dropped.inc(len(stored))
        # Republish redelivered events too: a crash may have hit between insert and publish.
        published = sorted(
            [*numbered, *stored.values()],
            key=lambda e: (e.aggregate_type, e.aggregate_id, e.version or 0),
        )
        await self._producer.send_many(self._stored_topic, [Outgoing.of(e) for e in published])
        self._metrics.events_published.labels("async").inc(len(published))
        self._metrics.append_batch_size.observe(len(records))
        self._metrics.append_latency.observe(time.perf_counter() - started)
        return published

    def _decode(self, records: Sequence[Record]) -> tuple[list[Event], list[DeadLetter]]:
        events: list[Event] = []
        letters: list[DeadLetter] = []
        for record in records:
            event = decode_record(record, max_event_bytes=self._max_event_bytes)
            if isinstance(event, DeadLetter):
                letters.append(event)
                continue
            problem = self._check(event)
            if problem:
                letters.append(DeadLetter(record, *problem))
            else:
                events.append(event)
        return events, letters

    def _check(self, event: Event) -> tuple[str, str] | None:
        if event.aggregate_type not in self._domains:
            return "unknown_aggregate_type", f"no domain {event.aggregate_type!r}"
        domain = self._domains.get(event.aggregate_type)
        if domain.mode is not Mode.ASYNC:
            writer = "EventSourcedStorage" if domain.mode is Mode.STORAGE else "the command path"
            return (
                "invalid",
                f"{domain.name} is a {domain.mode} domain; its events are written by {writer}",
            )
        if event.type not in domain.events:
            return "unknown_event_type", f"{domain.name} has no event type {event.type!r}"
        if event.version is not None:
            return (
                "already_versioned",
                f"events on this topic carry no version, got {event.version}",
            )
        return None

    async def _append(self, fresh: list[Event], stored: dict[str, Event]) -> list[Event]:
        """Number and insert ``fresh`` in order; resolve conflicts by re-reading versions."""
        done: list[Event] = []
        pending = fresh
        for _ in range(MAX_CONFLICT_ROUNDS):
            if not pending:
                return done
            numbered = await self._number(pending)
            try:
                await self._store.append(numbered)
            except AppendConflict as conflict:
                inserted = numbered[: conflict.inserted]
                self._remember(inserted)
                self._metrics_appended(inserted)
                done.extend(inserted)
                failed = conflict.failed
                if conflict.id_taken:
                    # Redeliveries come in runs (a restart replays a whole range): look them all up.
                    rest = [e.id for e in pending if e.id not in {x.id for x in inserted}]
                    stored.update(await self._store.find(rest))
                else:
                    self._versions.pop((failed.aggregate_type, failed.aggregate_id), None)
                pending = [e for e in pending if e.id not in {x.id for x in inserted}]
                pending = [e for e in pending if e.id not in stored]
                continue
            self._remember(numbered)
            self._metrics_appended(numbered)
            done.extend(numbered)
            return done
        raise StoreUnavailable(
            f"gave up after {MAX_CONFLICT_ROUNDS} version conflicts in one batch; "
            "another writer keeps appending to the same aggregates."
        )

    async def _number(self, events: list[Event]) -> list[Event]:
        refs = [(e.aggregate_type, e.aggregate_id) for e in events]
        unknown = [ref for ref in dict.fromkeys(refs) if ref not in self._versions]
        if unknown:
            found = await self._store.last_versions(unknown)
            for ref in unknown:
                self._versions[ref] = found.get(ref, 0)
        next_version = {ref: self._versions[ref] for ref in dict.fromkeys(refs)}
        numbered = []
        for ref, event in zip(refs, events, strict=True):
            next_version[ref] += 1
            numbered.append(event.with_version(next_version[ref]))
        return numbered

    def _remember(self, events: Sequence[Event]) -> None:
        for event in events:
            ref = (event.aggregate_type, event.aggregate_id)
            self._versions[ref] = max(self._versions.get(ref, 0), event.version or 0)
            self._versions.move_to_end(ref)
        while len(self._versions) > VERSION_CACHE_SIZE:
            self._versions.popitem(last=False)

    def _metrics_appended(self, events: Sequence[Event]) -> None:
        counts: dict[str, int] = {}
        for event in events:
            counts[event.aggregate_type] = counts.get(event.aggregate_type, 0) + 1
        for aggregate_type, count in counts.items():
            self._metrics.events_appended.labels(aggregate_type).inc(count)
