"""The waiters of one process: a watch per aggregate (or view document) and the one task that
checks the store for every due watch, bounded per process and per principal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence

from topics.envelope import Event
from topics.errors import EventfleetError
from workers.http.ryw.reads import (
    CHUNK,
    FIRST_POLL_S,
    SAFETY_PER_TICK,
    SWEEP_S,
    Caller,
    NotYetStored,
    TooManyWaiters,
    WaitBounds,
    refused_at_store,
)
from workers.metrics import RywMetrics
from workers.ports import (
    AggregateRef,
    EventStore,
    Listening,
    LiveChannel,
    LiveFeed,
    Rejections,
    stop_once_subscribed,
)

log = logging.getLogger(__name__)


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
        "known",
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
        self.known = False
        """``head`` was read or announced (a watch not yet checked knows nothing)."""
        self.due = True
        """Check at the next round (a waiter came, the feed was confirmed or may have missed
        announcements)."""
        self.next_at = 0.0
        self.checked_at = 0.0
        self.delay = FIRST_POLL_S


class Waits:
    """Every waiter of one process, their bounds, and the one task that checks for them."""

    def __init__(
        self,
        *,
        events: EventStore,
        rejections: Rejections,
        feed: Callable[[], Awaitable[LiveFeed]] | None,
        bounds: WaitBounds,
        metrics: RywMetrics | None,
    ) -> None:
        self._events = events
        self._rejections = rejections
        self._feed = feed
        self._poll_s = bounds.safety_poll_s
        self._max_waiters = bounds.max_waiters
        self._max_per_principal = bounds.max_per_principal
        self._retry_after_s = bounds.retry_after_s
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
            self.refused_at_store("process")
            raise TooManyWaiters(
                f"this process has {self.waiting} reads waiting for their writes, its limit "
                f"(EVENTFLEET_RYW_MAX_WAITERS); retry in {self._retry_after_s} s or on another "
                "process.",
                limit="process",
                retry_after_s=self._retry_after_s,
            )
        held = self._held.get(caller.principal, 0)
        if held >= self._max_per_principal:
            self.refused_at_store("principal")
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

    def refused_at_store(self, limit: str) -> None:
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
        seen: int | None = None,
    ) -> tuple[int | None, int | None]:
        """Wait until ``ref`` has ``wanted`` stored (or the event ``event_id``): its version, or
        None at the deadline; and the version last seen stored (``seen``, the caller's own
        read, counts), None when nothing was read before the deadline."""
        self._acquire(caller)
        watch = self._stores.get(ref)
        if watch is None:
            watch = self._stores[ref] = _Watch(ref)
            self._listen(watch)
        if seen is not None:
            watch.head, watch.known = max(watch.head, seen), True
        waiter = _Waiter(caller, wanted=wanted, event_id=event_id, command_id=command_id)
        watch.waiters.add(waiter)
        watch.due = True  # what was stored since the read's own check is not missed
        try:
            return await self._until(waiter, deadline), watch.head if watch.known else None
        finally:
            watch.waiters.discard(waiter)
            self._release(caller)
            if not watch.waiters and self._stores.get(ref) is watch:
                del self._stores[ref]
                if watch.listening is not None:
                    stop_once_subscribed(watch.listening)

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
        watch.head, watch.known = max(watch.head, version), True
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
                async with asyncio.timeout(max(0.0, until - loop.time())):
                    await wake.wait()

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
        """``due``, with at most ``SAFETY_PER_TICK`` of the listening watches whose only reason is
        the safety net (those checked longest ago): with more aggregates waited on, each is checked
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
            watch.head, watch.known = max(watch.head, 0 if head is None else head.version), True
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
                waiter.fail(refused_at_store(watch.ref, command_id, event_id, refused))

    async def _check_view(self, watch: _Watch) -> None:
        assert watch.version_of is not None
        seen = await watch.version_of()
        self._counted("view")
        watch.head, watch.known = max(watch.head, seen), True
        for waiter in tuple(watch.waiters):
            if waiter.wanted is not None and seen >= waiter.wanted:
                waiter.settle(seen)

    def _sweep(self) -> None:
        """End the waits whose client left (its answer goes nowhere)."""
        for watch in (*self._stores.values(), *self._views.values()):
            for waiter in tuple(watch.waiters):
                if waiter.caller.gone():
                    waiter.fail(
                        NotYetStored(
                            f"{watch.ref[0]} {watch.ref[1]}: the client of this read left; "
                            "its wait ended.",
                            stored_version=watch.head,
                            wanted_version=waiter.wanted,
                        )
                    )


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
