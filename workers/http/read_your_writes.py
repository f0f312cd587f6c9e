"""Read your writes: a query that names what it must see waits for it to be stored, bounded.

``GET …/state``, ``/events`` and the domains' view routes take ``min_version=N`` (or the
``command_id`` of an accepted command) and ``wait_ms``. An async append is answered ``202``
before the appender stores it; a client that reads right after asks "answer once version N
(my command's event) is stored": ``200`` with it, ``409 refused`` with the store's refusal, or
``504 not_yet_stored`` when ``wait_ms`` ran out.

A read checks the store once when it comes; only if it must wait does it become a waiter, and
waiters are bounded: at most ``max_waiters`` per process and ``max_per_principal`` per
principal (``TooManyWaiters``: ``429 too_many_waiters`` with ``Retry-After``). A waiter never
reads the store itself. The waiters of one aggregate share one watch: one listener on the live
feed (the appender, in any process, announces what it stored; an announced event that is the
version or the command's event wakes its waiters with no store read) and one store check for
them all, when a waiter arrives, once the feed confirmed the subscription, when the feed says
it may have missed announcements, and on the process's tick (every ``poll_s``, at least
``poll_s`` apart) as the safety net for a lost one. One task per process runs those checks, the
heads of every due aggregate ``CHUNK`` at a time (other requests never queue behind many of
its lookups), so the store sees at most one check per aggregate per ``poll_s`` however many
wait on it, and every aggregate's in the same round; the safety net reads at most
``SAFETY_PER_TICK`` aggregates a tick (with more, each in turn).
Without a feed (or while it fails) a watch is checked on a backoff from 2 ms up to ``poll_s``.
A view has no announcement of its own (its projection folds after the store): the waiters of
one view document share one read of it, on the same backoff. A waiter whose client left is
released within a second (``SWEEP_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
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
from workers.metrics import RywMetrics
from workers.ports import (
    AggregateRef,
    EventStore,
    Listening,
    LiveChannel,
    LiveFeed,
    Rejection,
    Rejections,
)

log = logging.getLogger(__name__)

DEFAULT_WAIT_MS = 1000
MAX_WAIT_MS = 30_000
FIRST_POLL_S = 0.002
SAFETY_POLL_S = 1.0
"""How often the store is checked for an aggregate that waiters wait on (the feed wakes them
sooner; this catches a lost announcement). ``EVENTFLEET_RYW_POLL_MS``."""
MAX_WAITERS = 2000
MAX_WAITERS_PER_PRINCIPAL = 100
RETRY_AFTER_S = 1
SWEEP_S = 1.0
"""How often waiters whose client left are looked for (no store read)."""
CHUNK = 8
"""Aggregates checked in one store call: a large round is read in chunks, one after another,
so other requests never queue behind more than a few of its lookups."""
SAFETY_PER_TICK = 64
"""The most aggregates the safety net checks a tick: with more waited on, each in turn."""
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


class TooManyWaiters(EventfleetError):
    """A read would wait past a bound of waiters; ``limit`` names which (process, principal)."""

    retriable = True

    def __init__(self, message: str, *, limit: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_s = retry_after_s


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Caller:
    """Who waits: the principal whose bound the wait counts against, and whether its client
    has left (a wait of a client that left is released)."""

    principal: str
    gone: Callable[[], bool] = _never


NOBODY = Caller("anonymous")
"""The caller of a waiter no request was named for (the CLI, a test)."""


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
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput(f"query parameter {name}={raw!r} must be a whole number.")
    digits = raw.lstrip("0") or "0"
    value = int(digits) if len(digits) <= 18 else None  # no int() of a thousand digits
    if value is None or not low <= value <= high:
        shown = value if value is not None else f"{raw[:18]}… ({len(raw)} digits)"
        raise InvalidInput(f"query parameter {name}={shown} must be between {low} and {high}.")
    return value


class WriteWaiter:
    """Waits until a read's ``ReadAfter`` holds, for the store and for a view.

    One per process: its waiters, their bounds and the task that checks the store for them are
    shared; ``serving(caller)`` is the same waiter with its waits counted against ``caller``.
    """

    def __init__(
        self,
        *,
        domains: Domains,
        events: EventStore,
        rejections: Rejections,
        feed: Callable[[], Awaitable[LiveFeed]] | None = None,
        safety_poll_s: float = SAFETY_POLL_S,
        max_waiters: int = MAX_WAITERS,
        max_per_principal: int = MAX_WAITERS_PER_PRINCIPAL,
        retry_after_s: int = RETRY_AFTER_S,
        metrics: RywMetrics | None = None,
    ) -> None:
        self._domains = domains
        self._events = events
        self._rejections = rejections
        self._waits = _Waits(
            events=events,
            rejections=rejections,
            feed=feed,  # made on first use: a process that never waits never subscribes
            poll_s=safety_poll_s,
            max_waiters=max_waiters,
            max_per_principal=max_per_principal,
            retry_after_s=retry_after_s,
            metrics=metrics,
        )
        self._caller = NOBODY

    def serving(self, caller: Caller) -> WriteWaiter:
        """This waiter, its waits counted against ``caller`` and ended when its client leaves."""
        bound = copy.copy(self)
        bound._caller = caller
        return bound

    @property
    def waiting(self) -> int:
        """Reads waiting now, in this process."""
        return self._waits.waiting

    def waiting_of(self, principal: str) -> int:
        """Reads of ``principal`` waiting now, in this process."""
        return self._waits.held(principal)

    @property
    def watched(self) -> int:
        """Aggregates (and view documents) waited on now: one watch each, however many wait."""
        return self._waits.watched

    @property
    def idle(self) -> bool:
        """No check is running or due now (until a waiter comes, the feed asks, or a poll)."""
        return self._waits.idle

    async def stored(self, ref: AggregateRef, after: ReadAfter) -> None:
        """Return once the store holds what ``after`` names; raise RefusedAtStore/NotYetStored
        (or TooManyWaiters, when it must wait and a bound is reached)."""
        deadline = time.monotonic() + after.wait_ms / 1000
        await self._wanted(ref, after, deadline)

    async def in_view(
        self,
        ref: AggregateRef,
        after: ReadAfter,
        version_of: Callable[[], Awaitable[int]],
        *,
        view: str | None = None,
    ) -> None:
        """Return once the view (its version by ``version_of``) has folded what ``after`` names.

        ``view`` names the projection: the waits for one view document share its reads.
        """
        deadline = time.monotonic() + after.wait_ms / 1000
        wanted = await self._wanted(ref, after, deadline)
        seen = await version_of()
        if seen < wanted and time.monotonic() < deadline:
            key: object = object() if view is None else (view, ref)
            seen = await self._waits.view(
                key, ref, wanted=wanted, version_of=version_of, caller=self._caller,
                deadline=deadline,
            )  # fmt: skip
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
        seen = await self._head(ref)
        if seen >= wanted:
            return wanted
        if time.monotonic() < deadline:
            found, seen = await self._waits.store(
                ref, wanted=wanted, caller=self._caller, deadline=deadline
            )
            if found is not None:
                return wanted
        raise NotYetStored(
            f"{ref[0]} {ref[1]} has version {seen} stored, not yet {wanted}, "
            f"within wait_ms={after.wait_ms}. Ask again (an accepted event is stored "
            f"moments later), or with a longer wait_ms (at most {MAX_WAIT_MS}).",
            stored_version=seen,
            wanted_version=wanted,
        )

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
        found = (await self._events.find([event_id], aggregates=[ref])).get(event_id)
        if found is not None and found.version is not None:
            return found.version
        refused = (await self._rejections.find([event_id])).get(event_id)
        if refused is not None and refused.aggregate_id == ref[1]:
            raise _refused(ref, command_id, event_id, refused)
        seen: int | None = None
        if time.monotonic() < deadline:
            version, seen = await self._waits.store(
                ref, event_id=event_id, command_id=command_id, caller=self._caller,
                deadline=deadline,
            )  # fmt: skip
            if version is not None:
                return version
        raise NotYetStored(
            f"{ref[0]} {ref[1]}: the event of command {command_id} is not stored within "
            f"wait_ms={wait_ms}: it is on its way, or was never accepted here (GET "
            f"…/outcome?command_id={command_id} says which). Ask again, or with a "
            f"longer wait_ms (at most {MAX_WAIT_MS}).",
            stored_version=await self._head(ref) if seen is None else seen,
            wanted_version=None,
        )


def _refused(
    ref: AggregateRef, command_id: str, event_id: str, refused: Rejection
) -> RefusedAtStore:
    return RefusedAtStore(
        f"{ref[0]} {ref[1]}: command {command_id} was refused by the store "
        f"({refused.reason}): {refused.message}",
        reason=refused.reason,
        event_id=event_id,
        command_id=command_id,
    )


class _Waiter:
    """One waiting read: the version it wants (or its command's event), and its answer."""

    __slots__ = ("caller", "command_id", "done", "event_id", "wanted")

    def __init__(
        self,
        caller: Caller,
        *,
        wanted: int | None = None,
        event_id: str | None = None,
        command_id: str | None = None,
    ) -> None:
        self.caller = caller
        self.wanted = wanted
        self.event_id = event_id
        self.command_id = command_id
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def settle(self, version: int) -> None:
        if not self.done.done():
            self.done.set_result(version)

    def fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class _Watch:
    """The waiters of one aggregate's store (or of one view document), checked together."""

    __slots__ = (
        "checked_at",
        "delay",
        "due",
        "head",
        "listening",
        "next_at",
        "ref",
        "version_of",
        "waiters",
    )

    def __init__(
        self, ref: AggregateRef, version_of: Callable[[], Awaitable[int]] | None = None
    ) -> None:
        self.ref = ref
        self.version_of = version_of
        self.waiters: set[_Waiter] = set()
        self.listening: asyncio.Task[Listening] | None = None
        self.head = 0
        """The version last seen stored (for a view: folded)."""
        self.due = True
        """Check at the next round (a waiter came, the feed was confirmed or may have missed
        announcements)."""
        self.next_at = 0.0
        self.checked_at = 0.0
        self.delay = FIRST_POLL_S


class _Waits:
    """Every waiter of one process, their bounds, and the one task that checks for them."""

    def __init__(
        self,
        *,
        events: EventStore,
        rejections: Rejections,
        feed: Callable[[], Awaitable[LiveFeed]] | None,
        poll_s: float,
        max_waiters: int,
        max_per_principal: int,
        retry_after_s: int,
        metrics: RywMetrics | None,
    ) -> None:
        self._events = events
        self._rejections = rejections
        self._feed = feed
        self._poll_s = poll_s
        self._max_waiters = max_waiters
        self._max_per_principal = max_per_principal
        self._retry_after_s = retry_after_s
        self._metrics = metrics
        self._stores: dict[AggregateRef, _Watch] = {}
        self._views: dict[object, _Watch] = {}
        self._held: dict[str, int] = {}
        self.waiting = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._checking = False
        if metrics is not None:
            metrics.waiters.set_function(lambda: self.waiting)

    @property
    def watched(self) -> int:
        return len(self._stores) + len(self._views)

    @property
    def idle(self) -> bool:
        watches = (*self._stores.values(), *self._views.values())
        return not self._checking and not any(w.due for w in watches)

    def held(self, principal: str) -> int:
        return self._held.get(principal, 0)

    # --- the bounds -------------------------------------------------------------------------

    def _acquire(self, caller: Caller) -> None:
        if self.waiting >= self._max_waiters:
            self._refused("process")
            raise TooManyWaiters(
                f"this process has {self.waiting} reads waiting for their writes, its limit "
                f"(EVENTFLEET_RYW_MAX_WAITERS); retry in {self._retry_after_s} s or on another "
                "process.",
                limit="process",
                retry_after_s=self._retry_after_s,
            )
        held = self._held.get(caller.principal, 0)
        if held >= self._max_per_principal:
            self._refused("principal")
            raise TooManyWaiters(
                f"{caller.principal} has {held} reads waiting for their writes on this process, "
                "its limit (EVENTFLEET_RYW_MAX_WAITERS_PER_PRINCIPAL); let one of them end "
                f"first, or retry in {self._retry_after_s} s.",
                limit="principal",
                retry_after_s=self._retry_after_s,
            )
        self._held[caller.principal] = held + 1
        self.waiting += 1

    def _release(self, caller: Caller) -> None:
        held = self._held.get(caller.principal, 0)
        if held <= 1:
            self._held.pop(caller.principal, None)
        else:
            self._held[caller.principal] = held - 1
        self.waiting -= 1

    def _refused(self, limit: str) -> None:
        if self._metrics is not None:
            self._metrics.refused.labels(limit).inc()

    def _counted(self, read: str) -> None:
        if self._metrics is not None:
            self._metrics.checks.labels(read).inc()

    # --- waiting ----------------------------------------------------------------------------

    async def store(
        self,
        ref: AggregateRef,
        *,
        caller: Caller,
        deadline: float,
        wanted: int | None = None,
        event_id: str | None = None,
        command_id: str | None = None,
    ) -> tuple[int | None, int]:
        """Wait until ``ref`` has ``wanted`` stored (or the event ``event_id``): its version, or
        None at the deadline; and the version last seen stored."""
        self._acquire(caller)
        watch = self._stores.get(ref)
        if watch is None:
            watch = self._stores[ref] = _Watch(ref)
            self._listen(watch)
        waiter = _Waiter(caller, wanted=wanted, event_id=event_id, command_id=command_id)
        watch.waiters.add(waiter)
        watch.due = True  # what was stored since the read's own check is not missed
        try:
            return await self._until(waiter, deadline), watch.head
        finally:
            watch.waiters.discard(waiter)
            self._release(caller)
            if not watch.waiters and self._stores.get(ref) is watch:
                del self._stores[ref]
                if watch.listening is not None:
                    _stop_listening(watch.listening)

    async def view(
        self,
        key: object,
        ref: AggregateRef,
        *,
        wanted: int,
        version_of: Callable[[], Awaitable[int]],
        caller: Caller,
        deadline: float,
    ) -> int:
        """Wait until the view document ``key`` has folded ``wanted``: the version last seen."""
        self._acquire(caller)
        watch = self._views.get(key)
        if watch is None:
            watch = self._views[key] = _Watch(ref, version_of)
        waiter = _Waiter(caller, wanted=wanted)
        watch.waiters.add(waiter)
        try:
            found = await self._until(waiter, deadline)
            return watch.head if found is None else found
        finally:
            watch.waiters.discard(waiter)
            self._release(caller)
            if not watch.waiters and self._views.get(key) is watch:
                del self._views[key]

    async def _until(self, waiter: _Waiter, deadline: float) -> int | None:
        self._kick()
        left = deadline - time.monotonic()
        if left > 0:
            await asyncio.wait((waiter.done,), timeout=left)
        if waiter.done.done():
            return waiter.done.result()  # raises a refusal, a store's failure, a client gone
        return None

    def _kick(self) -> None:
        """Make the checking task run a round now (and start it if it is not running)."""
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(self._wake), name="read-your-writes")

    # --- the feed ---------------------------------------------------------------------------

    def _listen(self, watch: _Watch) -> None:
        if self._feed is None:
            return

        def heard(event: Event | None) -> None:
            self._heard(watch, event)

        def confirmed(_: object) -> None:  # listening (or failed: polled on the backoff)
            watch.due = True
            self._kick()

        watch.listening = asyncio.create_task(_subscribe(self._feed, watch.ref, heard))
        watch.listening.add_done_callback(confirmed)

    def _heard(self, watch: _Watch, event: Event | None) -> None:
        """An announcement for the watch's aggregate; None: some may have been missed."""
        if event is None:
            watch.due = True
            self._kick()
            return
        version = event.version or 0  # stored, so every version before it is stored too
        watch.head = max(watch.head, version)
        for waiter in tuple(watch.waiters):
            if waiter.event_id is not None:
                if waiter.event_id == event.id:
                    waiter.settle(version)
            elif waiter.wanted is not None and version >= waiter.wanted:
                waiter.settle(waiter.wanted)

    # --- the checks -------------------------------------------------------------------------

    async def _run(self, wake: asyncio.Event) -> None:
        """Rounds while anyone waits: check the due watches, release waiters whose client left."""
        loop = asyncio.get_running_loop()
        swept_at = loop.time()
        while self._stores or self._views:
            wake.clear()
            self._checking = True
            try:
                await self._round(loop.time())
                if loop.time() - swept_at >= SWEEP_S:
                    self._sweep()
                    swept_at = loop.time()
            except Exception:  # a bug here must not leave waiters unchecked
                log.exception("read your writes: a round of store checks failed")
            finally:
                self._checking = False
            if wake.is_set():
                continue
            watches = (*self._stores.values(), *self._views.values())
            until = min((swept_at + SWEEP_S, *(w.next_at for w in watches)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, until - loop.time()))

    async def _round(self, now: float) -> None:
        stores = [w for w in self._stores.values() if w.due or w.next_at <= now]
        views = [w for w in self._views.values() if w.due or w.next_at <= now]
        stores = self._safety_budget(stores, now)
        for watch in (*stores, *views):
            watch.due = False
            watch.next_at = self._next(watch, now)
            watch.checked_at = now
        for i in range(0, len(stores), CHUNK):
            chunk = [w for w in stores[i : i + CHUNK] if w.waiters]
            if chunk:
                await _failing_all(chunk, self._check_stores(chunk))
        for i in range(0, len(views), CHUNK):
            chunk = [w for w in views[i : i + CHUNK] if w.waiters]
            await asyncio.gather(*(_failing_all([w], self._check_view(w)) for w in chunk))

    def _safety_budget(self, due: list[_Watch], now: float) -> list[_Watch]:
        """``due``, with at most ``SAFETY_PER_TICK`` of the listening watches whose only reason is the
        safety net (those checked longest ago): with more aggregates waited on, each is checked
        in turn, so a lost announcement costs the store a bounded read a tick, not one per
        aggregate. The others wait for the next tick."""
        safety = [w for w in due if not w.due and _listening(w.listening)]
        if len(safety) <= SAFETY_PER_TICK:
            return due
        safety.sort(key=lambda w: w.checked_at)
        later = set(safety[SAFETY_PER_TICK:])
        for watch in later:
            watch.next_at = self._tick_after(now)
        return [w for w in due if w not in later]

    def _tick_after(self, at: float) -> float:
        return math.ceil((at + self._poll_s) / self._poll_s) * self._poll_s

    def _next(self, watch: _Watch, now: float) -> float:
        """When to check ``watch`` again. The feed wakes a listening watch: it is checked on
        the process's tick (every ``poll_s``), at least ``poll_s`` from now, so every listening
        watch is checked in the same round, one read for all; any other on a backoff up to
        ``poll_s``."""
        if _listening(watch.listening):
            return self._tick_after(now)
        delay = watch.delay
        watch.delay = min(delay * 2, self._poll_s)
        return now + delay

    async def _check_stores(self, watches: Sequence[_Watch]) -> None:
        """One read of the heads of ``watches``; the events and refusals of their commands."""
        heads = await self._events.heads([w.ref for w in watches])
        self._counted("heads")
        commands: list[tuple[_Watch, _Waiter]] = []
        for watch in watches:
            head = heads.get(watch.ref)
            watch.head = max(watch.head, 0 if head is None else head.version)
            for waiter in tuple(watch.waiters):
                if waiter.event_id is not None:
                    commands.append((watch, waiter))
                elif waiter.wanted is not None and watch.head >= waiter.wanted:
                    waiter.settle(waiter.wanted)
        if not commands:
            return
        ids = [waiter.event_id for _, waiter in commands if waiter.event_id is not None]
        found = await self._events.find(ids, aggregates=list({w.ref for w, _ in commands}))
        self._counted("find")
        rest = []
        for watch, waiter in commands:
            event = found.get(waiter.event_id or "")
            if event is not None and event.version is not None:
                waiter.settle(event.version)
            else:
                rest.append((watch, waiter))
        if not rest:
            return
        refusals = await self._rejections.find([waiter.event_id or "" for _, waiter in rest])
        self._counted("rejections")
        for watch, waiter in rest:
            refused = refusals.get(waiter.event_id or "")
            if refused is not None and refused.aggregate_id == watch.ref[1]:
                command_id, event_id = waiter.command_id or "", waiter.event_id or ""
                waiter.fail(_refused(watch.ref, command_id, event_id, refused))

    async def _check_view(self, watch: _Watch) -> None:
        assert watch.version_of is not None
        seen = await watch.version_of()
        self._counted("view")
        watch.head = max(watch.head, seen)
        for waiter in tuple(watch.waiters):
            if waiter.wanted is not None and seen >= waiter.wanted:
                waiter.settle(seen)

    def _sweep(self) -> None:
        """End the waits whose client left (its answer goes nowhere)."""
        for watch in (*self._stores.values(), *self._views.values()):
            for waiter in tuple(watch.waiters):
                if waiter.caller.gone():
                    waiter.fail(NotYetStored(
                        f"{watch.ref[0]} {watch.ref[1]}: the client of this read left; its wait "
                        "ended.", stored_version=watch.head, wanted_version=waiter.wanted,
                    ))  # fmt: skip


async def _failing_all(watches: Sequence[_Watch], check: Awaitable[None]) -> None:
    """Run ``check``; when it fails, so does every wait of ``watches`` (a store unavailable is
    answered as to a read that did not wait)."""
    try:
        await check
    except Exception as e:
        if not isinstance(e, EventfleetError):
            log.warning("read your writes: a store check failed: %r", e)
        for watch in watches:
            for waiter in tuple(watch.waiters):
                waiter.fail(e)


async def _subscribe(
    feed: Callable[[], Awaitable[LiveFeed]],
    ref: AggregateRef,
    heard: Callable[[Event | None], None],
) -> Listening:
    return await (await feed()).listen(LiveChannel(ref[0], ref[1]), heard)


def _listening(subscribing: asyncio.Task[Listening] | None) -> bool:
    """A feed wakes this watch (still subscribing counts: a failure falls back to polling)."""
    if subscribing is None:
        return False
    return not subscribing.done() or (
        not subscribing.cancelled() and subscribing.exception() is None
    )


_STOPPING: set[asyncio.Task[None]] = set()


def _stop_listening(subscribing: asyncio.Task[Listening]) -> None:
    """Stop a watch's listener, once it is subscribed if it still subscribes (cancelling it
    could leave its listener registered), without holding any answer back."""

    async def stop() -> None:
        with contextlib.suppress(Exception):
            await (await subscribing).stop()

    task = asyncio.create_task(stop())
    _STOPPING.add(task)
    task.add_done_callback(_STOPPING.discard)


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
            await self._waiter.in_view(
                ref, self._after, lambda: self._view_version(where, ref), view=where
            )
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
