"""Live subscriptions: an aggregate's stored events after a version, then the live ones, each
exactly once and in version order on one connection, whatever the live feed loses.

The feed (``LiveFeed``, Redis Pub/Sub) only makes delivery fast. A subscription starts
listening *before* it reads the store, keeps its position (the last version it gave out) and
takes a live event only when it is the next version; anything else (a version past a gap, a
feed that says it may have missed messages, a quiet heartbeat interval) makes it read the
store after its position, in pages. Older versions are dropped as repeats. What waits for a
slow client is bounded: past ``buffer_events`` the subscription ends with ``SlowSubscriber``,
which names the position to resume from; nothing is skipped and memory never grows. Nor is a
hole in history (versions an archive lost): the catch-up gives out the events before it, then
ends with ``HistoryGone``, naming the first version after it (``workers.roles.read.paging``).
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from topics.envelope import Event, decode
from topics.errors import EventfleetError, InvalidEnvelope, InvalidInput
from topics.jsonvalue import JsonObject
from workers.ports import AggregateRef, EventStore, LiveChannel, LiveFeed, TopicTail
from workers.roles.history import whole_run


@dataclass(frozen=True, slots=True)
class LiveLimits:
    """How one process serves live subscribers."""

    buffer_events: int = 1000
    """Live events one connection may hold unsent; past it, the slow client is closed."""
    heartbeat_s: float = 15.0
    """A quiet connection gets a heartbeat this often, and its position is checked against
    the store (a lost announcement of the last event is found here)."""
    page: int = 500
    """Events read from the store at a time."""
    max_connections: int = 10_000
    max_per_principal: int = 100


class SlowSubscriber(EventfleetError):
    """A client read slower than its events came; it resumes after ``after_version``."""

    retriable = True

    def __init__(self, message: str, *, after_version: int) -> None:
        super().__init__(message)
        self.after_version = after_version


class TooManySubscriptions(EventfleetError):
    """A connection limit is reached; ``limit`` names which (process or principal); a client
    retries after ``retry_after_s``, when other subscriptions may have ended."""

    retriable = True
    code = "too_many_subscriptions"
    retry_after_s: ClassVar[int] = 5

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit

    def details(self) -> JsonObject:
        return {"limit": self.limit, "retry_after_s": self.retry_after_s}


def _same(event: Event) -> Event:
    return event


async def _as_they_are(events: Sequence[Event]) -> list[Event]:
    return list(events)


class AggregateSubscription:
    """One connection's catch-up subscription to one aggregate.

    ``push``, when a transport sets it, takes live events without a task switch: a live event
    that is the next version, heard while the subscription is idle (caught up, nothing pending,
    no store read due, waiting), is offered to ``push`` as the feed delivered it, synchronously;
    when ``push`` returns True the event counts as given out, else it waits in the buffer as
    any other and ``batches`` yields it. So the order and the buffer's bound hold either way.
    """

    def __init__(
        self,
        *,
        feed: LiveFeed,
        store: EventStore,
        aggregate: AggregateRef,
        after_version: int,
        limits: LiveLimits,
        upcast: Callable[[Event], Event] = _same,
        open_events: Callable[[Sequence[Event]], Awaitable[list[Event]]] = _as_they_are,
        on_gap: Callable[[], None] = lambda: None,
    ) -> None:
        self.aggregate = aggregate
        self.position = after_version
        """The last version taken from the feed or the store (given out once yielded)."""
        self.given_out = after_version
        """The last version given out (yielded, or pushed): the client resumes after it."""
        self.push: Callable[[Event], bool] | None = None
        self._feed = feed
        self._store = store
        self._limits = limits
        self._upcast = upcast
        self._open = open_events  # what readers see: personal fields opened, as on /events
        self._on_gap = on_gap
        self._pending: list[Event] = []
        self._resync = False
        self._overflow = False
        self._more_stored = True  # read the store first: the catch-up
        self.caught_up = False
        """The catch-up is over: every stored event up to a moment ago was given out."""
        self.live = False
        """The last batch was live (not catch-up): its store-to-client latency is meaningful."""
        self._waiter: asyncio.Future[None] | None = None  # set while idle, resolved to wake
        self._quiet_since = 0.0  # loop time of the last event given out (or of the start)
        self._heartbeat: asyncio.TimerHandle | None = None  # one timer, moved lazily
        self._heartbeat_due = False
        self._pushed = False

    @property
    def resume(self) -> dict[str, object]:
        """Where a client resumes: the query parameter to reconnect with."""
        return {"after_version": self.given_out}

    def _deliver(self, event: Event | None) -> None:
        if event is None:
            self._resync = True
        else:
            version = event.version or 0
            if version <= self.position:
                return  # a repeat, or already read from the store
            waiter, push = self._waiter, self.push
            if (
                version == self.position + 1
                and push is not None
                and waiter is not None
                and not waiter.done()
                and not self._pending
                and not self._resync
                and not self._overflow
                and push(event if self._upcast is _same else self._upcast(event))
            ):
                self.position = self.given_out = version
                self._pushed = True  # not quiet: the heartbeat moves on when it comes
                return
            if len(self._pending) >= self._limits.buffer_events:
                self._overflow = True
            else:
                self._pending.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        """Batches of events in version order; an empty batch is a quiet heartbeat interval.

        Raises SlowSubscriber when the client fell more than ``buffer_events`` behind,
        StoreUnavailable when the store does not answer (the client resumes from
        ``position``), and HistoryGone when the next version is stored nowhere any more.
        """
        kind_type, kind_id = self.aggregate
        loop = asyncio.get_running_loop()
        self._quiet_since = loop.time()
        listening = await self._feed.listen(LiveChannel(kind_type, kind_id), self._deliver)
        try:
            while True:
                if self._more_stored or self._resync:
                    batch = await self._open(await self._read_store())
                    self.given_out = self.position  # not before: a batch cut short is not out
                    yield batch
                    self._quiet_since = loop.time()
                    continue
                if not (self._pending or self._overflow or self._heartbeat_due):
                    await self._idle(loop)
                if self._heartbeat_due:
                    self._heartbeat_due = False
                    if not (self._pending or self._overflow):
                        self._more_stored = True  # the safety net: a lost last announcement
                        continue
                if self._overflow:
                    raise SlowSubscriber(
                        f"{kind_type} {kind_id}: the client fell more than "
                        f"{self._limits.buffer_events} events behind; resume with "
                        f"after_version={self.position}.",
                        after_version=self.position,
                    )
                events = self._take_live()
                if events:
                    batch = await self._open(events)
                    self.given_out = self.position
                    yield batch
                    self._quiet_since = loop.time()
        finally:
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            await listening.stop()

    async def _idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for a live event (one ``push`` did not take) or a quiet heartbeat interval."""
        if self._heartbeat is None:  # no timer per wait: one, moved on when it fires early
            self._heartbeat = loop.call_at(
                self._quiet_since + self._limits.heartbeat_s, self._on_heartbeat
            )
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _on_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pushed:  # given out since the timer was set: quiet from now at the earliest
            self._pushed = False
            self._quiet_since = loop.time()
        due = self._quiet_since + self._limits.heartbeat_s
        if loop.time() < due:
            self._heartbeat = loop.call_at(due, self._on_heartbeat)
            return
        self._heartbeat = None
        self._heartbeat_due = True
        self._wake()

    def _take_live(self) -> list[Event]:
        """The pending live events that continue the position; a gap makes a store read."""
        pending, self._pending = sorted(self._pending, key=_version), []
        taken: list[Event] = []
        self.live = True
        for event in pending:
            version = _version(event)
            if version <= self.position:
                continue  # a repeat, or already read from the store
            if version != self.position + 1:
                self._more_stored = True  # a gap: read it before anything newer
                self._on_gap()
                break
            taken.append(self._upcast(event))
            self.position = version
        return taken

    async def _read_store(self) -> list[Event]:
        """One page after the position; the catch-up goes on until a page is short."""
        self._resync = False
        found = await self._store.select(
            self.aggregate, after=self.position, limit=self._limits.page
        )
        stored = whole_run(found, self.aggregate, self.position)  # never across a hole
        self.live = self.caught_up
        self._more_stored = len(found) >= self._limits.page or len(stored) < len(found)
        self.caught_up = self.caught_up or not self._more_stored
        if stored:
            self.position = _version(stored[-1])
        if self._overflow:  # fell behind while catching up: what it missed is in the store
            self._overflow = False
            self._pending = []
            self._more_stored = True
        else:
            self._pending = [e for e in self._pending if _version(e) > self.position]
        return [self._upcast(e) for e in stored]


class TypeSubscription:
    """Every stored event of one aggregate type, from a position per partition of
    events.stored (the next offset to read there), as they are stored; no consumer group.

    Pull-based: events.stored is read only as fast as the client takes them, so a slow client
    holds nothing. A repeated copy of an event on the topic (a republish after a crash) is
    dropped by its aggregate's version, within the connection (the newest
    ``remembered`` aggregates).
    """

    def __init__(
        self,
        *,
        tail: TopicTail,
        topic: str,
        aggregate_type: str,
        after: Mapping[int, int],
        limits: LiveLimits,
        upcast: Callable[[Event], Event] = _same,
        open_events: Callable[[Sequence[Event]], Awaitable[list[Event]]] = _as_they_are,
        remembered: int = 100_000,
    ) -> None:
        self.aggregate_type = aggregate_type
        self.position: dict[int, int] = dict(after)
        self.tokens: dict[str, str] = {}
        """The position after each event of the last batch, by event id (the SSE id)."""
        self.given_out = position_token(self.position)
        """The position after the last batch given out: the client resumes there."""
        self.live = False  # until the first quiet interval: catching up
        self._tail, self._topic, self._limits = tail, topic, limits
        self._upcast, self._open = upcast, open_events
        self._seen: OrderedDict[AggregateRef, int] = OrderedDict()
        self._remembered = remembered

    @property
    def resume(self) -> dict[str, object]:
        return {"after": self.given_out}

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        """Batches of the type's events in topic order; [] after a quiet heartbeat interval."""
        follow = self._tail.follow(
            self._topic, after=self.position, idle_s=self._limits.heartbeat_s
        )
        try:
            async for records in follow:
                events: list[Event] = []
                self.tokens = {}
                for record in records:
                    self.position[record.partition] = record.offset + 1
                    event = self._wanted(record.value)
                    if event is not None:
                        events.append(self._upcast(event))
                        self.tokens[event.id] = position_token(self.position)
                if not records:
                    self.live = True
                batch = await self._open(events) if events else []
                self.given_out = position_token(self.position)
                yield batch
        finally:
            if isinstance(
                follow, AsyncGenerator
            ):  # the port says AsyncIterator; ours are generators
                await follow.aclose()

    def _wanted(self, value: bytes) -> Event | None:
        try:
            event = decode(value)
        except InvalidEnvelope:
            return None  # not ours to judge: the topic's consumers dead-letter it
        if event.aggregate_type != self.aggregate_type or event.version is None:
            return None
        ref = (event.aggregate_type, event.aggregate_id)
        if self._seen.get(ref, 0) >= event.version:
            return None  # a repeated copy
        self._seen[ref] = event.version
        self._seen.move_to_end(ref)
        if len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        return event


def position_token(position: Mapping[int, int]) -> str:
    """``0:15,1:7``: the next offset per partition (the SSE id of a type subscription)."""
    return ",".join(f"{p}:{o}" for p, o in sorted(position.items()))


_DIGITS = re.compile(r"[0-9]+\Z")
"""ASCII digits: ``str.isdigit`` also takes '²', which ``int`` then refuses (a 500, not a 400)."""


def parse_position(raw: str) -> dict[int, int]:
    """The position a client sends back (``after`` or ``Last-Event-ID``); InvalidInput if bad."""
    found: dict[int, int] = {}
    if raw.strip() == "":
        return found
    for part in raw.split(","):
        partition, sep, offset = part.strip().partition(":")
        if (
            not sep
            or not _DIGITS.match(partition)
            or not _DIGITS.match(offset)
            or len(offset) > 18
            or len(partition) > 6
            or int(partition) in found
        ):
            raise InvalidInput(
                f"position {raw!r} must be <partition>:<next offset> pairs separated by commas, "
                "each partition once, as the stream's ids give it (e.g. 0:15,1:7)."
            )
        found[int(partition)] = int(offset)
    return found


def _version(event: Event) -> int:
    return event.version or 0


class Limiter:
    """Connections per process and per principal: ``acquire`` before serving, ``release`` after."""

    def __init__(self, *, per_process: int, per_principal: int) -> None:
        self._per_process = per_process
        self._per_principal = per_principal
        self._open: dict[str, int] = {}
        self.total = 0

    def acquire(self, principal: str) -> None:
        """Count one more connection of ``principal``; TooManySubscriptions past a limit."""
        if self.total >= self._per_process:
            raise TooManySubscriptions(
                f"this process serves {self.total} live subscriptions, its limit "
                "(EVENTFLEET_LIVE_MAX_CONNECTIONS); retry on another process or later.",
                limit="process",
            )
        held = self._open.get(principal, 0)
        if held >= self._per_principal:
            raise TooManySubscriptions(
                f"{principal} holds {held} live subscriptions on this process, its limit "
                "(EVENTFLEET_LIVE_MAX_PER_PRINCIPAL); close one first.",
                limit="principal",
            )
        self._open[principal] = held + 1
        self.total += 1

    def release(self, principal: str) -> None:
        held = self._open.get(principal, 0)
        if held == 0:
            return  # never acquired: nothing to give back
        if held == 1:
            del self._open[principal]
        else:
            self._open[principal] = held - 1
        self.total -= 1
