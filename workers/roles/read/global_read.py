"""The global read: every stored event across aggregates, from a position, in pages or live.

It reads ``events.stored``, the log every writer publishes each stored event to (kept forever:
``topics.catalog``), from a position that holds the next offset of every partition
(``workers.roles.read.position``). The order is the log's: within a partition (so within an
aggregate, whose events share one) the offset order, stable and never rewritten; across
partitions the runs of one read interleaved by the time Kafka took their records, which is no
total order. A reader that resumes at a position misses nothing: Kafka gives a record its offset
when it appends it and a reader sees a partition only up to its high-water mark, so nothing can
appear later below an offset already read past. The appender pays nothing for it (Kafka numbers
the records); the guide (docs/guides/global-read.md) argues the choice against a store-assigned
sequence.

Filters (aggregate types, event types, an aggregate id prefix) and the principal's read rule
(each event's domain, ``Access.may_read``, asked once per aggregate per page or batch) choose
what is given out; what they skip is read past all the same, so the position moves on. A
repeated copy of an event on the log (an appender that crashed after publishing republishes)
is dropped by its aggregate's version within one page, and within one subscription's
connection: across pages a copy can come again, with the same id and version (the client's
iterator drops it; a read model drops a version at or below the last it applied). A page reads
at most ``scan`` records: a filter that matches little answers a short, even empty, page with
``more`` true.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from snapshot_rules.declaration import did_you_mean
from snapshot_rules.domain import Domains
from topics.envelope import Actor, Event, decode
from topics.errors import InvalidEnvelope, InvalidInput, PositionOutdated
from workers.ports import AggregateRef, Record, TopicPages, TopicSlice, TopicTail
from workers.roles.read.live import LiveLimits
from workers.roles.read.position import Positions

MayRead = Callable[[str, str], bool]
"""``(aggregate_type, aggregate_id) -> bool``: whether the reader may read that aggregate."""
OpenEvents = Callable[[Sequence[Event]], Awaitable[list[Event]]]


@dataclass(frozen=True, slots=True)
class GlobalFilter:
    """Which stored events a global read gives out; an empty field keeps every value."""

    aggregate_types: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    id_prefix: str = ""

    def keeps_key(self, key: bytes | None) -> bool:
        """Whether a record's key (``type:id``) may be kept: decided without decoding it."""
        if key is None or not (self.aggregate_types or self.id_prefix):
            return True
        kind, sep, ident = key.partition(b":")
        if not sep:
            return True  # not our key: the envelope decides
        if self.aggregate_types and kind.decode("utf-8", "replace") not in self.aggregate_types:
            return False
        return ident.startswith(self.id_prefix.encode())

    def keeps(self, event: Event) -> bool:
        return (
            (not self.aggregate_types or event.aggregate_type in self.aggregate_types)
            and (not self.event_types or event.type in self.event_types)
            and event.aggregate_id.startswith(self.id_prefix)
        )


def choose(
    domains: Domains,
    *,
    aggregate_types: Sequence[str] = (),
    event_types: Sequence[str] = (),
    id_prefix: str = "",
) -> GlobalFilter:
    """The filter a reader asks for, checked against the enabled domains: UnknownAggregateType
    for a type none declares; InvalidInput for an event type none of the chosen types (every
    enabled one when none is chosen) declares: a filter that could never keep an event is a
    mistake to name, while one that keeps nothing now answers empty pages."""
    chosen = [domains.get(name) for name in aggregate_types] or list(domains)
    declared = {event_type for domain in chosen for event_type in domain.events}
    for event_type in event_types:
        if event_type not in declared:
            of = ", ".join(sorted(d.name for d in chosen)) or "no enabled domain"
            raise InvalidInput(
                f"event_type {event_type!r} is declared by none of {of}"
                f"{did_you_mean(event_type, declared)}; name event types of the chosen "
                "aggregate types (GET /v1/types lists them)."
            )
    return GlobalFilter(frozenset(aggregate_types), frozenset(event_types), id_prefix)


def read_rule(domains: Domains, actor: Actor | None) -> MayRead:
    """What ``actor`` may read: each aggregate by its domain's read rule (every aggregate of an
    enabled domain when the door is open, ``actor`` None); nothing of a type no enabled domain
    declares (no rule to ask, no upcaster)."""

    def may_read(aggregate_type: str, aggregate_id: str) -> bool:
        if aggregate_type not in domains:
            return False
        return actor is None or domains.get(aggregate_type).access.may_read(actor, aggregate_id)

    return may_read


@dataclass(frozen=True, slots=True)
class GlobalPage:
    """Events in log order; ``positions[i]`` is the position right after ``events[i]``,
    ``next`` the one after everything this page read; ``more``: the log held records past it."""

    events: list[Event]
    positions: list[str]
    more: bool
    next: str


class Picker:
    """Chooses what a read gives out of the records it reads: decoded, stored, kept by the
    filter, readable, and the first copy of each (aggregate, version) it meets (the newest
    ``remembered`` aggregates)."""

    def __init__(
        self, keep: GlobalFilter, may_read: MayRead, domains: Domains, remembered: int = 100_000
    ) -> None:
        self._keep, self._may_read, self._domains = keep, may_read, domains
        self._seen: OrderedDict[AggregateRef, int] = OrderedDict()
        self._remembered = remembered
        self._allowed: dict[AggregateRef, bool] = {}

    def forget_rules(self) -> None:
        """Ask the read rule again from now on (a new page or batch)."""
        self._allowed.clear()

    def pick(self, record: Record) -> Event | None:
        if not self._keep.keeps_key(record.key):
            return None
        try:
            event = decode(record.value)
        except InvalidEnvelope:
            return None  # not ours to judge: the log's consumers dead-letter it
        if event.version is None or not self._keep.keeps(event):
            return None
        if event.aggregate_type not in self._domains:
            return None  # no read rule to ask, no upcaster: not given out
        ref = (event.aggregate_type, event.aggregate_id)
        if self._seen.get(ref, 0) >= event.version:
            return None  # a repeated copy
        self._seen[ref] = event.version
        self._seen.move_to_end(ref)
        if len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        allowed = self._allowed.get(ref)
        if allowed is None:
            allowed = self._allowed[ref] = self._may_read(*ref)
        return self._domains.upcast(event) if allowed else None


def merged(found: TopicSlice) -> Iterator[Record]:
    """Each partition's run in offset order, the runs interleaved by record time."""
    runs = [found.runs[p] for p in sorted(found.runs)]
    return heapq.merge(*runs, key=lambda r: (r.timestamp_ms or 0, r.partition))


class GlobalRead:
    """One process's global read of the stored-event log ``topic``: its pages and its
    subscriptions. The position key is read from the store once, on first use."""

    def __init__(
        self,
        *,
        pages: TopicPages,
        tail: TopicTail,
        topic: str,
        key: Callable[[], Awaitable[bytes]],
        domains: Domains,
        open_events: OpenEvents,
        scan: int = 5000,
    ) -> None:
        self._pages, self._tail, self._topic, self._key = pages, tail, topic, key
        self._domains, self._open, self._scan = domains, open_events, scan
        self._positions: Positions | None = None

    async def positions(self) -> Positions:
        if self._positions is None:
            self._positions = Positions(await self._key(), self._topic)
        return self._positions

    async def page(
        self, *, after: str, limit: int, keep: GlobalFilter, may_read: MayRead
    ) -> GlobalPage:
        """Up to ``limit`` events after ``after`` ('' : the beginning). InvalidInput for a
        position this fleet did not make as it is; PositionOutdated for one the log cannot
        continue from; StreamUnavailable when Kafka does not answer."""
        positions = await self.positions()
        named = positions.decode(after) if after else {}
        picker = Picker(keep, may_read, self._domains)
        chosen: list[Event] = []
        tokens: list[str] = []
        cursor: dict[int, int] | None = None
        partitions, budget, want, more = 0, self._scan, max(limit, 100), True
        while more and len(chosen) < limit and budget > 0:
            if cursor is None:
                found = await self._first(after, named, min(budget, want))
                partitions, cursor = found.partitions, dict(found.starts)
            else:
                found = await self._pages.read(self._topic, after=cursor, limit=min(budget, want))
            for record in merged(found):
                if len(chosen) >= limit:
                    break
                cursor[record.partition] = record.offset + 1
                budget -= 1
                event = picker.pick(record)
                if event is not None:
                    chosen.append(event)
                    tokens.append(positions.encode(cursor, partitions))
            more = any(cursor[p] < end for p, end in found.ends.items())
            if not any(found.runs.values()):
                break  # nothing came: the next read would find no more either
            want *= 2
        assert cursor is not None  # the loop ran once at least
        return GlobalPage(
            await self._open(chosen), tokens, more, positions.encode(cursor, partitions)
        )

    async def subscription(
        self, *, after: str, keep: GlobalFilter, may_read: MayRead, limits: LiveLimits
    ) -> GlobalSubscription:
        """Every event after ``after``, then each as it is stored; refused as ``page`` refuses
        before anything streams."""
        positions = await self.positions()
        found = await self._first(after, positions.decode(after) if after else {}, 1)
        return GlobalSubscription(
            tail=self._tail,
            topic=self._topic,
            positions=positions,
            partitions=found.partitions,
            start=found.starts,
            picker=Picker(keep, may_read, self._domains),
            limits=limits,
            open_events=self._open,
        )

    async def _first(self, after: str, named: Mapping[int, int], limit: int) -> TopicSlice:
        """The first read from a position: PositionOutdated when it counts other partitions
        than the log has (said as such, before any offset it names is judged)."""
        positions = await self.positions()
        try:
            found = await self._pages.read(self._topic, after=named, limit=limit)
        except PositionOutdated:
            if after:  # other partitions than now: the likelier cause, and the one to name
                counted = await self._pages.read(self._topic, after={}, limit=1)
                positions.decode(after, partitions=counted.partitions)
            raise
        if after:
            positions.decode(after, partitions=found.partitions)
        return found


class GlobalSubscription:
    """The global read followed live from a position: pull-based (the log is read only as fast
    as the client takes it, so a slow client holds nothing), each event once per connection.
    ``tokens`` holds the position after each event of the last batch (its SSE id)."""

    def __init__(
        self,
        *,
        tail: TopicTail,
        topic: str,
        positions: Positions,
        partitions: int,
        start: Mapping[int, int],
        picker: Picker,
        limits: LiveLimits,
        open_events: OpenEvents,
    ) -> None:
        self.position: dict[int, int] = dict(start)
        self.tokens: dict[str, str] = {}
        self.live = False  # until the first quiet interval: catching up
        self._tail, self._topic, self._positions = tail, topic, positions
        self._partitions, self._picker, self._limits, self._open = (
            partitions,
            picker,
            limits,
            open_events,
        )
        self.given_out = positions.encode(self.position, partitions)
        """The position after the last batch given out: the client resumes there."""

    @property
    def resume(self) -> dict[str, object]:
        return {"after": self.given_out}

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        """Batches in log order; [] after a quiet heartbeat interval."""
        follow = self._tail.follow(
            self._topic, after=self.position, idle_s=self._limits.heartbeat_s
        )
        try:
            async for records in follow:
                events: list[Event] = []
                self.tokens = {}
                self._picker.forget_rules()
                for record in records:
                    self.position[record.partition] = record.offset + 1
                    event = self._picker.pick(record)
                    if event is not None:
                        events.append(event)
                        self.tokens[event.id] = self._positions.encode(
                            self.position, self._partitions
                        )
                if not records:
                    self.live = True
                batch = await self._open(events) if events else []
                self.given_out = self._positions.encode(self.position, self._partitions)
                yield batch
        finally:
            if isinstance(
                follow, AsyncGenerator
            ):  # the port says AsyncIterator; ours are generators
                await follow.aclose()
