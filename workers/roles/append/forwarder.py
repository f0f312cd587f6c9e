"""The forwarder's logic: produce each stored event to its domain's routed downstream topics,
each copy once per (aggregate, version) on every topic.

Downstream topics carry the current schema version of every event (upcast; an event already
current keeps its original bytes) and, besides each stored event, the events its domain
derives from it (``Domain.derive``, e.g. a storage mapper's ``UserEmailChanged``) as records
of their own type: stored once, routed as their own records, keyed like their source so the
aggregate's order holds. An event whose upcaster fails is dead-lettered (``upcast_failed``).

**Never twice.** A record of a downstream topic is at a *position* of its aggregate: (version
of the stored event, part), part 0 the stored event itself and 1, 2, … what is derived from it,
in the order ``Domain.derive`` gives. An aggregate's events reach ``events.stored`` in version
order (its first copies), and the forwarder in that order (``InOrder``: none past an offset of
its partition not yet received) and its records land on one partition of each downstream topic (the
key), so what a topic holds of an aggregate is a prefix of its positions, and "the highest
position written" per (topic, aggregate) says what not to produce again. The forwarder keeps
that high mark for what it produced, and learns it from the topics themselves (``WrittenLog``)
where another producer may have written:

- on a partition of ``events.stored`` newly assigned (a rebalance, a restart after a kill), it
  reads every downstream topic back from the time of the first record its group has not
  committed there, less ``lookback_ms``: every copy the partition's previous owner produced
  of records past the commit is stamped after that record was (clocks apart by less than the
  lookback), so it is found;
- after a produce that failed or timed out (some copies may have landed), it reads the topic
  back from just before the attempt, and takes for each aggregate the copies that landed in
  order (a later batch that landed after a lost one is sent again rather than skipped);
- a copy on ``events.stored`` itself (the appender republishing an event stored before it was
  killed) is at a position already written, so it is skipped like any other.

Skipped copies count in ``eventfleet_forward_copies_skipped_total``; the copies of a produce
that failed or timed out in ``eventfleet_forward_copies_unsure_total``: a broker that holds such
a request in its socket may append it only after the read-back (see architecture.md), so each of
those, and only those, may reach its topic twice. Every downstream record
carries its position as headers (``DEDUP_HEADERS``): a consumer that must hold against what
this cannot rule out (docs/concepts/architecture.md, "Each stored event once downstream") drops a
record at or below the position it last applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames
from topics.envelope import Event, decode
from topics.errors import InvalidEnvelope, ReplayFailed
from workers import tracing
from workers.metrics import Metrics
from workers.ports import Outgoing, Producer, Record, WrittenLog
from workers.roles.deadletter import DeadLetter, DeadLetters

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "eventfleet-event-id"
VERSION_HEADER = "eventfleet-version"
PART_HEADER = "eventfleet-part"
DEDUP_HEADERS = (EVENT_ID_HEADER, VERSION_HEADER, PART_HEADER)
"""Set on every downstream record: the record's event id, the aggregate version it comes from,
and its part (0: the stored event, n: the n-th event derived from it)."""
LOOKBACK_MS = 60_000
"""How far before the first uncommitted record a partition's new owner reads its topics back:
covers clocks of different hosts apart and a copy of ``events.stored`` republished late
(``EVENTFLEET_FORWARD_LOOKBACK_S``)."""
REMEMBERED = 1_000_000
"""Aggregates whose high marks are kept per process (least recently forwarded forgotten first)."""

Position = tuple[int, int]
"""(version, part): where a downstream record stands in its aggregate's history."""
Committed = Callable[[Collection[int]], Awaitable[dict[int, int | None]]]
"""The group's committed offsets of ``events.stored`` partitions (None: never committed)."""


def position_of(record: Record) -> Position | None:
    """A downstream record's position: from its headers, else (written before them) from its
    envelope as part 0; None for a record that names none."""
    headers = dict(record.headers)
    version = headers.get(VERSION_HEADER)
    if version is not None:
        try:
            return int(version), int(headers.get(PART_HEADER, b"0"))
        except ValueError:
            return None
    try:
        event = decode(record.value)
    except InvalidEnvelope:
        return None
    return None if event.version is None else (event.version, 0)


def with_position(message: Outgoing, event: Event, version: int, part: int) -> Outgoing:
    """``message`` with the deduplication headers (any it had of those names replaced)."""
    kept = [(k, v) for k, v in message.headers if k not in DEDUP_HEADERS]
    return Outgoing(
        message.key,
        message.value,
        [
            *kept,
            (EVENT_ID_HEADER, event.id.encode()),
            (VERSION_HEADER, str(version).encode()),
            (PART_HEADER, str(part).encode()),
        ],
    )


@dataclass(frozen=True, slots=True)
class ReadBack:
    """How the forwarder learns what an earlier owner of its partitions sent: its target topics
    read back from ``lookback_ms`` before the first uncommitted record, once the producer has
    ``settle``d (no record it took can still land after the read)."""

    written: WrittenLog
    lookback_ms: int = LOOKBACK_MS
    settle: Callable[[], Awaitable[None]] | None = None


class Forwarder:
    """Routes stored events downstream with their key and correlation headers intact, each
    (aggregate, version, part) once per topic."""

    def __init__(
        self,
        *,
        producer: Producer,
        domains: Domains,
        names: TopicNames,
        metrics: Metrics,
        dead_letters: DeadLetters | None = None,
        read_back: ReadBack | None = None,
        remembered: int = REMEMBERED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``read_back``: None, the topics are never read back (each copy is sent at least
        once, and a new owner may send again what its predecessor sent)."""
        self._producer = producer
        self._domains = domains
        self._names = names
        self._metrics = metrics
        self._dead_letters = dead_letters
        self._written_log = None if read_back is None else read_back.written
        self._lookback_ms = LOOKBACK_MS if read_back is None else read_back.lookback_ms
        self._remembered = remembered
        self._clock = clock
        self._settle = None if read_back is None else read_back.settle
        self._high: OrderedDict[tuple[str, bytes], Position] = OrderedDict()
        self._owned: set[int] | None = None  # None: never told, every partition is this one's
        self._fresh: set[int] = set()  # assigned, their topics not read back yet
        self._revoked: set[int] = set()  # revoked and not assigned again
        self._unsure: dict[str, tuple[int, list[tuple[bytes, Position]]]] = {}
        self._committed: Committed | None = None
        self._lock = asyncio.Lock()

    def routes(self, event: Event) -> list[str]:
        if event.aggregate_type not in self._domains:
            return []  # e.g. a storage collection declared without a storage_domain
        domain = self._domains.get(event.aggregate_type)
        return [self._names.name(r.topic) for r in domain.routes if r.matches(event.type)]

    def topics(self) -> list[str]:
        """Every downstream topic some domain routes to."""
        return sorted({self._names.name(t) for t in self._domains.downstream_topics()})

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

    # --- ownership (the agent's rebalance hooks) ----------------------------------------------

    def track(self, committed: Committed) -> None:
        """Where the group stands on ``events.stored``: asked when a partition is assigned."""
        self._committed = committed

    async def assigned(self, partitions: Iterable[int]) -> None:
        """The partitions of ``events.stored`` this process now forwards. Each may have been
        another's since this one last held it (a member dropped from the group hears of no
        revoke), and forwarded past the commit: all are read back before producing."""
        async with self._lock:
            self._owned = set(partitions)
            self._fresh = set(self._owned)
            self._revoked -= self._owned

    async def revoked(self, partitions: Iterable[int]) -> None:
        """Stop forwarding these partitions; returns once no produce of theirs is in flight, so
        their next owner reads back everything this one produced."""
        async with self._lock:
            if self._owned is not None:
                self._owned -= set(partitions)
            self._revoked |= set(partitions)

    # --- forwarding ---------------------------------------------------------------------------

    async def handle(self, events: Sequence[tuple[Event, Record]]) -> int:
        """Produce every routed copy not written yet, then wait for all acks; return how many
        were sent."""
        async with self._lock:
            if self._owned is not None:
                # A revoked partition's records are its next owner's (and no longer acked
                # here); one never named (its assignment not heard of yet) is read back first.
                events = [(e, r) for e, r in events if r.partition not in self._revoked]
                unheard = {r.partition for _, r in events} - self._owned
                self._owned |= unheard
                self._fresh |= unheard
            if not events:
                return 0
            await self._read_back()
            return await self._forward(events)

    async def _forward(self, events: Sequence[tuple[Event, Record]]) -> int:
        by_topic: dict[str, list[tuple[bytes, Position | None, Outgoing]]] = {}
        planned: dict[tuple[str, bytes], Position] = {}
        skipped: dict[str, int] = {}
        letters: list[DeadLetter] = []
        for event, record in events:
            try:
                pairs = self.outgoing(event, record)
            except ReplayFailed as e:
                letters.append(DeadLetter(record, "upcast_failed", str(e)))
                continue
            key, version = event.key, event.version
            for part, (item, message) in enumerate(pairs):
                position: Position | None = None if version is None else (version, part)
                if position is not None:
                    message = with_position(message, item, *position)
                for topic in self.routes(item):
                    if position is not None:
                        mark = (topic, key)
                        high = planned.get(mark) or self._high.get(mark)
                        if high is not None and position <= high:
                            skipped[topic] = skipped.get(topic, 0) + 1
                            continue
                        planned[mark] = position
                    by_topic.setdefault(topic, []).append((key, position, message))
        if letters and self._dead_letters is not None:
            await self._dead_letters.send(letters)
        for topic, count in skipped.items():
            self._metrics.forward_copies_skipped.labels(topic).inc(count)
        for topic, items in by_topic.items():
            attempted_ms = self._now_ms()
            try:
                await self._producer.send_many(topic, [message for _, _, message in items])
            except BaseException:
                # Some copies may have landed: read the topic back before producing again.
                earlier, _ = self._unsure.get(topic, (attempted_ms, []))
                since = min(earlier, attempted_ms) - self._lookback_ms
                self._unsure[topic] = (since, [(k, p) for k, p, _ in items if p is not None])
                self._metrics.forward_copies_unsure.labels(topic).inc(len(items))
                raise
            for key, position, _ in items:
                if position is not None:
                    self._remember((topic, key), position)
            self._metrics.events_forwarded.labels(topic).inc(len(items))
        return sum(len(items) for items in by_topic.values())

    async def _read_back(self) -> None:
        """Learn what other producers (or this one's unacknowledged produces) wrote."""
        if self._written_log is None:
            self._fresh.clear()
            self._unsure.clear()
            return
        if self._unsure and self._settle is not None:
            await self._settle()  # a copy the producer still retries would land after the read
        reads: dict[str, int] = {topic: since for topic, (since, _) in self._unsure.items()}
        if self._fresh:
            since = await self._first_uncommitted_ms(self._fresh) - self._lookback_ms
            for topic in self.topics():
                reads[topic] = min(reads.get(topic, since), since)
        for topic, since in sorted(reads.items()):
            records = await self._written_log.since(topic, since)
            _, attempted = self._unsure.get(topic, (0, []))
            self._learn(topic, records, attempted)
            self._unsure.pop(topic, None)
            log.info("forwarder: read %s back from %d: %d records", topic, since, len(records))
        self._fresh.clear()

    async def _first_uncommitted_ms(self, partitions: Collection[int]) -> int:
        """The time of the earliest record the group has not committed on ``partitions`` (now,
        where every record is committed)."""
        assert self._written_log is not None
        committed = await self._committed(partitions) if self._committed else {}
        earliest = self._now_ms()
        for partition in sorted(partitions):
            at = await self._written_log.time_at(
                self._names.stored, partition, committed.get(partition) or 0
            )
            if at is not None:
                earliest = min(earliest, at)
        return earliest

    def _learn(
        self, topic: str, records: Sequence[Record], attempted: Sequence[tuple[bytes, Position]]
    ) -> None:
        """Raise the high marks to what ``records`` hold; for an aggregate of a failed produce,
        only as far as its attempted copies landed without a hole."""
        landed: dict[bytes, set[Position]] = {}
        first: dict[bytes, Position] = {}  # the lowest attempted position per aggregate
        for key, position in attempted:
            first[key] = min(first.get(key, position), position)
        tried = set(first)
        for record in records:
            at = position_of(record)
            if record.key is None or at is None:
                continue
            if record.key in tried:
                landed.setdefault(record.key, set()).add(at)
            else:
                self._remember((topic, record.key), at)
        for key, position in sorted(attempted):
            found = landed.get(key, set())
            if position not in found:
                tried.discard(key)  # a hole: this copy and the rest are sent again
            elif key in tried:
                self._remember((topic, key), position)
        for key, found in landed.items():  # copies from before the attempt (another producer)
            below = [p for p in found if p < first[key]]
            if below:
                self._remember((topic, key), max(below))

    def _remember(self, mark: tuple[str, bytes], position: Position) -> None:
        high = self._high.get(mark)
        if high is None or position > high:
            self._high[mark] = position
        self._high.move_to_end(mark)
        while len(self._high) > self._remembered:
            self._high.popitem(last=False)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _carried(message: Outgoing, record: Record) -> Outgoing:
    """A rewritten or derived record keeps the trace context of the stored event's record."""
    if not tracing.enabled():
        return message
    return Outgoing(message.key, message.value, tracing.carried(message.headers, record.headers))
