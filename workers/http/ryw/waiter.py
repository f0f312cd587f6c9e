"""The process's ``WriteWaiter`` the routes call, and the query context that waits with it."""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from snapshot_rules.domain import Domains
from snapshot_rules.projection import ViewDoc
from snapshot_rules.queries import QueryContext
from snapshot_rules.replay import Folded
from topics.envelope import Actor, Event, command_scope, derived_event_id
from workers.http.ryw.heads import SharedHeads
from workers.http.ryw.reads import (
    MAX_WAIT_MS,
    NOBODY,
    Caller,
    NotYetStored,
    ReadAfter,
    WaitBounds,
    refused_at_store,
)
from workers.http.ryw.waits import Waits
from workers.metrics import RywMetrics
from workers.ports import AggregateRef, EventStore, LiveFeed, Rejections

_STORE = ""  # no projection has an empty name


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
        bounds: WaitBounds = WaitBounds(),
        metrics: RywMetrics | None = None,
    ) -> None:
        self._domains = domains
        self._events = events
        self._rejections = rejections
        self._waits = Waits(
            events=events,
            rejections=rejections,
            feed=feed,  # made on first use: a process that never waits never subscribes
            bounds=bounds,
            metrics=metrics,
        )
        self._heads = SharedHeads(events)  # a read's own check, shared with its aggregate's
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
                key,
                ref,
                wanted=wanted,
                version_of=version_of,
                caller=self._caller,
                deadline=deadline,
            )
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
        seen = await self._heads.version(ref)
        if seen >= wanted:
            return wanted
        if time.monotonic() < deadline:
            found, last = await self._waits.store(
                ref, wanted=wanted, caller=self._caller, deadline=deadline, seen=seen
            )
            if found is not None:
                return wanted
            seen = seen if last is None else last  # the wait began from this read's own
        raise NotYetStored(
            f"{ref[0]} {ref[1]} has version {seen} stored, not yet {wanted}, "
            f"within wait_ms={after.wait_ms}. Ask again (an accepted event is stored "
            f"moments later), or with a longer wait_ms (at most {MAX_WAIT_MS}).",
            stored_version=seen,
            wanted_version=wanted,
        )

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
            raise refused_at_store(ref, command_id, event_id, refused)
        seen: int | None = None
        if time.monotonic() < deadline:
            version, seen = await self._waits.store(
                ref,
                event_id=event_id,
                command_id=command_id,
                caller=self._caller,
                deadline=deadline,
            )
            if version is not None:
                return version
        raise NotYetStored(
            f"{ref[0]} {ref[1]}: the event of command {command_id} is not stored within "
            f"wait_ms={wait_ms}: it is on its way, or was never accepted here (GET "
            f"…/outcome?command_id={command_id} says which). Ask again, or with a "
            f"longer wait_ms (at most {MAX_WAIT_MS}).",
            stored_version=await self._heads.version(ref) if seen is None else seen,
            wanted_version=None,
        )


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
        after_version: int | None = None,
    ) -> list[Event]:
        await self._ready(_STORE, aggregate)
        return await self._inner.events_before(
            aggregate,
            before_version=before_version,
            limit=limit,
            types=types,
            after_version=after_version,
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
