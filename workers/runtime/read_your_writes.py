"""Read your writes: a query that names what it must see waits for it to be stored, bounded.

``GET …/state``, ``/events`` and the domains' view routes take ``min_version=N`` (or the
``command_id`` of an accepted command) and ``wait_ms``. An async append is answered ``202``
before the appender stores it; a client that reads right after asks "answer once version N
(my command's event) is stored": ``200`` with it, ``409 refused`` with the store's refusal, or
``504 not_yet_stored`` when ``wait_ms`` ran out.

The wait for the store is event-driven: it listens on the live feed for the aggregate (the
appender, in any process, announces what it stored) and re-checks the store on each
announcement, once the subscription is confirmed, and once more at the bound. The feed is at
most once, so a slow poll (``SAFETY_POLL_S``) is the safety net for a lost announcement.
Without a feed the store is polled with a short backoff. A view has no announcement of its
own (its projection folds after the store): it is polled with the short backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from snapshot_rules.domain import Domains
from snapshot_rules.projection import ViewDoc
from snapshot_rules.queries import QueryContext
from snapshot_rules.replay import Folded
from topics.envelope import Actor, Event, command_scope, derived_event_id
from topics.errors import EventfleetError, InvalidInput
from workers.ports import AggregateRef, EventStore, Listening, LiveChannel, LiveFeed, Rejections

DEFAULT_WAIT_MS = 1000
MAX_WAIT_MS = 30_000
FIRST_POLL_S = 0.002
LAST_POLL_S = 0.05
SAFETY_POLL_S = 0.25
"""With a live feed: how often the store is re-checked without an announcement."""
_ID_MAX = 200
_STORE = ""  # no projection has an empty name


class NotYetStored(EventfleetError):
    """What a read asked to see was not stored (or not in the view) within its ``wait_ms``."""

    retriable = True

    def __init__(self, message: str, *, stored_version: int, wanted_version: int | None) -> None:
        super().__init__(message)
        self.stored_version = stored_version
        self.wanted_version = wanted_version


class RefusedAtStore(EventfleetError):
    """The command a read waits for was refused by the store: it will never be seen."""

    def __init__(self, message: str, *, reason: str, event_id: str, command_id: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.event_id = event_id
        self.command_id = command_id


@dataclass(frozen=True, slots=True)
class ReadAfter:
    """What a read must see: a version (``min_version``) or a command's event, within a bound."""

    min_version: int | None
    command_id: str | None
    wait_ms: int
    actor: Actor | None = None
    """Who reads: a ``command_id`` is theirs (``command_scope``), as on the append."""

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ReadAfter | None:
        """From a query string; None when it asks for nothing. Malformed: ``InvalidInput``."""
        min_version = _whole(query, "min_version", low=1, high=2**62)
        command_id = query.get("command_id")
        wait_ms = _whole(query, "wait_ms", low=0, high=MAX_WAIT_MS)
        if command_id is not None and not 0 < len(command_id) <= _ID_MAX:
            raise InvalidInput(f"query parameter command_id must be 1 to {_ID_MAX} characters.")
        if min_version is not None and command_id is not None:
            raise InvalidInput("give min_version or command_id, not both.")
        if min_version is None and command_id is None:
            if wait_ms is not None:
                raise InvalidInput(
                    "wait_ms bounds a wait for min_version=N or command_id=C; give one of them."
                )
            return None
        return cls(min_version, command_id, DEFAULT_WAIT_MS if wait_ms is None else wait_ms)


def _whole(query: Mapping[str, str], name: str, *, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise InvalidInput(f"query parameter {name}={raw!r} must be a whole number.")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(f"query parameter {name}={value} must be between {low} and {high}.")
    return value


class WriteWaiter:
    """Waits until a read's ``ReadAfter`` holds, for the store and for a view."""

    def __init__(
        self,
        *,
        domains: Domains,
        events: EventStore,
        rejections: Rejections,
        feed: Callable[[], Awaitable[LiveFeed]] | None = None,
        safety_poll_s: float = SAFETY_POLL_S,
    ) -> None:
        self._domains = domains
        self._events = events
        self._rejections = rejections
        self._feed = feed  # made on first use: a process that never waits never subscribes
        self._safety_poll_s = safety_poll_s

    async def stored(self, ref: AggregateRef, after: ReadAfter) -> None:
        """Return once the store holds what ``after`` names; raise RefusedAtStore/NotYetStored."""
        deadline = time.monotonic() + after.wait_ms / 1000
        await self._wanted(ref, after, deadline)

    async def in_view(
        self, ref: AggregateRef, after: ReadAfter, version_of: Callable[[], Awaitable[int]]
    ) -> None:
        """Return once the view (its version by ``version_of``) has folded what ``after`` names."""
        deadline = time.monotonic() + after.wait_ms / 1000
        wanted = await self._wanted(ref, after, deadline)
        seen = await _poll(version_of, wanted, deadline)
        if seen < wanted:
            raise NotYetStored(
                f"{ref[0]} {ref[1]}: the view has folded version {seen}, not yet {wanted}, "
                f"within wait_ms={after.wait_ms} (the projection is behind). Ask again, or with "
                f"a longer wait_ms (at most {MAX_WAIT_MS}).",
                stored_version=seen,
                wanted_version=wanted,
            )

    async def _wanted(self, ref: AggregateRef, after: ReadAfter, deadline: float) -> int:
        """The version the read must see, once it is stored."""
        if after.command_id is not None:
            return await self._command(
                ref, after.command_id, after.wait_ms, deadline, actor=after.actor
            )
        wanted = after.min_version
        assert wanted is not None

        async def reached() -> int | None:
            return wanted if await self._head(ref) >= wanted else None

        if await self._until_stored(ref, reached, deadline) is None:
            seen = await self._head(ref)
            raise NotYetStored(
                f"{ref[0]} {ref[1]} has version {seen} stored, not yet {wanted}, "
                f"within wait_ms={after.wait_ms}. Ask again (an accepted event is stored "
                f"moments later), or with a longer wait_ms (at most {MAX_WAIT_MS}).",
                stored_version=seen,
                wanted_version=wanted,
            )
        return wanted

    async def _head(self, ref: AggregateRef) -> int:
        head = (await self._events.heads([ref])).get(ref)
        return 0 if head is None else head.version

    async def _command(
        self,
        ref: AggregateRef,
        command_id: str,
        wait_ms: int,
        deadline: float,
        *,
        actor: Actor | None = None,
    ) -> int:
        domain = self._domains.get(ref[0])
        event_id = derived_event_id(domain.name, ref[1], command_scope(command_id, actor))

        async def settled() -> int | None:
            found = (await self._events.find([event_id], aggregates=[ref])).get(event_id)
            if found is not None and found.version is not None:
                return found.version
            refused = (await self._rejections.find([event_id])).get(event_id)
            if refused is not None and refused.aggregate_id == ref[1]:
                raise RefusedAtStore(
                    f"{ref[0]} {ref[1]}: command {command_id} was refused by the store "
                    f"({refused.reason}): {refused.message}",
                    reason=refused.reason,
                    event_id=event_id,
                    command_id=command_id,
                )
            return None

        version = await self._until_stored(ref, settled, deadline)
        if version is None:
            raise NotYetStored(
                f"{ref[0]} {ref[1]}: the event of command {command_id} is not stored within "
                f"wait_ms={wait_ms}: it is on its way, or was never accepted here (GET "
                f"…/outcome?command_id={command_id} says which). Ask again, or with a "
                f"longer wait_ms (at most {MAX_WAIT_MS}).",
                stored_version=await self._head(ref),
                wanted_version=None,
            )
        return version

    async def _until_stored(
        self, ref: AggregateRef, check: Callable[[], Awaitable[int | None]], deadline: float
    ) -> int | None:
        """``check()`` until it gives a version or the deadline passes (then None).

        With a feed: check at once while subscribing, and again once the subscription is
        confirmed (what was stored in between is not missed), on each announcement for
        ``ref``, every ``safety_poll_s`` (a lost announcement) and once more at the bound.
        """
        wake = asyncio.Event()
        subscribing: asyncio.Task[Listening] | None = None
        if self._feed is not None:
            subscribing = asyncio.create_task(_listen(self._feed, ref, wake))
            subscribing.add_done_callback(lambda _: wake.set())  # confirmed: check again
        delay = FIRST_POLL_S
        try:
            while True:
                wake.clear()
                found = await check()
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                pause = self._safety_poll_s if _listening(subscribing) else delay
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(pause, left))
                delay = min(delay * 2, LAST_POLL_S)
        finally:
            if subscribing is not None:
                await _stop_listening(subscribing)


async def _listen(
    feed: Callable[[], Awaitable[LiveFeed]], ref: AggregateRef, wake: asyncio.Event
) -> Listening:
    def heard(_: Event | None) -> None:  # an event of ref, or "you may have missed some"
        wake.set()

    return await (await feed()).listen(LiveChannel(ref[0], ref[1]), heard)


def _listening(subscribing: asyncio.Task[Listening] | None) -> bool:
    """A feed wakes this wait (still subscribing counts: a failure falls back to polling)."""
    if subscribing is None:
        return False
    return not subscribing.done() or (
        not subscribing.cancelled() and subscribing.exception() is None
    )


_STOPPING: set[asyncio.Task[None]] = set()


async def _stop_listening(subscribing: asyncio.Task[Listening]) -> None:
    """Stop the wait's listener; one still subscribing is stopped once it is subscribed
    (cancelling it could leave its listener registered), without holding the answer back."""
    if subscribing.done():
        if not subscribing.cancelled() and subscribing.exception() is None:
            await subscribing.result().stop()
        return

    async def later() -> None:
        with contextlib.suppress(Exception):
            await (await subscribing).stop()

    task = asyncio.create_task(later())
    _STOPPING.add(task)
    task.add_done_callback(_STOPPING.discard)


async def _poll(version_of: Callable[[], Awaitable[int]], wanted: int, deadline: float) -> int:
    """``version_of()`` until it reaches ``wanted`` or the deadline passes; its last value."""
    delay = FIRST_POLL_S
    while True:
        seen = await version_of()
        if seen >= wanted or time.monotonic() >= deadline:
            return seen
        delay = await _pause(delay, deadline)


async def _pause(delay: float, deadline: float) -> float:
    await asyncio.sleep(max(0.0, min(delay, deadline - time.monotonic())))
    return min(delay * 2, LAST_POLL_S)


class WaitingContext:
    """A domain query's ``QueryContext`` that first waits, per aggregate it reads, for ``after``.

    A view is waited on until it has folded the version; replayed state and stored events
    until the store holds it. Each aggregate is waited on once per request.
    """

    def __init__(self, inner: QueryContext, waiter: WriteWaiter, after: ReadAfter) -> None:
        self._inner = inner
        self._waiter = waiter
        self._after = after
        self._done: set[tuple[str, AggregateRef]] = set()

    async def _ready(self, where: str, ref: AggregateRef) -> None:
        if (where, ref) in self._done:
            return
        if where == _STORE:
            await self._waiter.stored(ref, self._after)
        else:
            await self._waiter.in_view(ref, self._after, lambda: self._view_version(where, ref))
        self._done.add((where, ref))

    async def _view_version(self, projection: str, ref: AggregateRef) -> int:
        doc = await self._inner.view(projection, ref)
        return 0 if doc is None else doc.version

    async def view(self, projection: str, aggregate: AggregateRef) -> ViewDoc | None:
        await self._ready(projection, aggregate)
        return await self._inner.view(projection, aggregate)

    async def has_events(self, aggregate: AggregateRef) -> bool:
        await self._ready(_STORE, aggregate)
        return await self._inner.has_events(aggregate)

    async def events_before(
        self,
        aggregate: AggregateRef,
        *,
        before_version: int | None,
        limit: int,
        types: Sequence[str] | None = None,
    ) -> list[Event]:
        await self._ready(_STORE, aggregate)
        return await self._inner.events_before(
            aggregate, before_version=before_version, limit=limit, types=types
        )

    async def latest(self, aggregate_type: str, aggregate_id: str) -> Folded:
        await self._ready(_STORE, (aggregate_type, aggregate_id))
        return await self._inner.latest(aggregate_type, aggregate_id)

    async def state_at(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
    ) -> Folded:
        await self._ready(_STORE, (aggregate_type, aggregate_id))
        return await self._inner.state_at(
            aggregate_type, aggregate_id, version=version, as_of=as_of
        )
