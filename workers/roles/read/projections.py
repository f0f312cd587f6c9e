"""The projection runner and the live rebuild: declared read models kept from stored events.

Application is idempotent and ordered per aggregate: the view keeps its applied version,
redeliveries are skipped, and a gap (after a rebuild or a partial failure) is filled from
the event store before anything newer is applied. Writes are guarded on (version,
generation), so neither a second worker nor a rebuild running next to the fleet can move a
view backwards. Pure logic over the ports; the runtime runs one agent per projection.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from snapshot_rules.projection import Projection, ViewDoc, advance
from snapshot_rules.replay import ReplayGap
from topics.envelope import Event
from topics.errors import EventfleetError, ReplayFailed, StoreError, Unstorable
from workers.metrics import Metrics
from workers.ports import (
    AggregateRef,
    EventStore,
    Outgoing,
    Record,
    ScannableEvents,
    ViewStaging,
    ViewStore,
)
from workers.roles.deadletter import DeadLetter, DeadLetters

log = logging.getLogger(__name__)

MAX_CONFLICTS = 50
REBUILD_CHUNK = 200
"""View documents per bulk insert while rebuilding."""
PROGRESS_EVERY = 1000


Upcaster = Callable[[Event], Event]
"""An event as the current schema version of its type (``Domains.upcast``)."""


def as_written(event: Event) -> Event:
    """No upcasting: events are folded as they were stored."""
    return event


class ViewContention(EventfleetError):
    """A view kept changing under its writer; something else rewrites it in a loop."""


@dataclass(frozen=True, slots=True)
class Applied:
    """Events of one call: folded into views, or skipped as already applied."""

    applied: int = 0
    skipped: int = 0

    def __add__(self, other: Applied) -> Applied:
        return Applied(self.applied + other.applied, self.skipped + other.skipped)


class ProjectionRunner:
    """Applies stored events to one projection's views: idempotent, in version order, guarded."""

    def __init__(
        self,
        projection: Projection,
        *,
        views: ViewStore,
        events: EventStore,
        metrics: Metrics,
        dead_letters: DeadLetters | None = None,
        upcast: Upcaster = as_written,
    ) -> None:
        self.projection = projection
        self.views = views
        self._events = events
        self._upcast = upcast
        self._applied = metrics.projection_events.labels(projection.name, "applied")
        self._skipped = metrics.projection_events.labels(projection.name, "skipped")
        self._parked_metric = metrics.aggregates_parked.labels("projection", "projection_failed")
        self._dead_letters = dead_letters
        # Aggregates whose view cannot be folded or stored: skipped until restart.
        self.parked: set[AggregateRef] = set()

    async def handle(self, events: Sequence[Event]) -> Applied:
        """Apply a batch of stored events (any aggregates, each in version order)."""
        by_ref: dict[AggregateRef, list[Event]] = {}
        for event in events:
            ref = (event.aggregate_type, event.aggregate_id)
            if self.projection.wants(event) and ref not in self.parked:
                by_ref.setdefault(ref, []).append(event)
        if not by_ref:
            return Applied()
        docs = await self.views.load_many(list(by_ref))
        results = await asyncio.gather(
            *(self._isolated(ref, docs.get(ref), evs) for ref, evs in by_ref.items())
        )
        return self._count(sum(results, Applied()))

    async def _isolated(
        self, ref: AggregateRef, doc: ViewDoc | None, events: Sequence[Event]
    ) -> Applied:
        """One aggregate's failure to fold or store its view parks it, not the partition."""
        try:
            return await self._project(ref, doc, [self._upcast(e) for e in events])
        except (ReplayFailed, Unstorable) as e:
            self.parked.add(ref)
            self._parked_metric.inc()
            log.error("projection %s stops for %s %s: %s", self.projection.name, ref[0], ref[1], e)
            if self._dead_letters is not None:
                out = Outgoing.of(events[-1])
                record = Record("events.stored", -1, -1, out.key, out.value, out.headers)
                letter = DeadLetter(record, "projection_failed", f"{self.projection.name}: {e}")
                await self._dead_letters.send([letter])
            return Applied(0, len(events))

    async def catch_up(self, ref: AggregateRef) -> Applied:
        """Apply whatever the store holds beyond the view's applied version."""
        doc = await self.views.load(ref)
        missing = await self._read(ref, after_version=doc.version if doc else 0)
        return self._count(await self._project(ref, doc, missing))

    async def _write(self, before: ViewDoc | None, after: ViewDoc) -> bool:
        try:
            return await self.views.write(before, after)
        except StoreError as e:  # the store refuses this view for good: park, never loop
            raise Unstorable(
                f"MongoDB refused the {self.projection.name} view of {after.aggregate_type} "
                f"{after.aggregate_id}: {e}"
            ) from e

    async def _read(
        self, ref: AggregateRef, *, after_version: int, to_version: int | None = None
    ) -> list[Event]:
        stored = await self._events.select(
            ref, after=after_version, before=None if to_version is None else to_version + 1
        )
        return [self._upcast(event) for event in stored]

    def _count(self, result: Applied) -> Applied:
        self._applied.inc(result.applied)
        self._skipped.inc(result.skipped)
        return result

    async def _project(
        self, ref: AggregateRef, doc: ViewDoc | None, events: Sequence[Event]
    ) -> Applied:
        """Fold ``events`` into the view; on a gap or a lost race, re-read and fold again."""
        to_version = max((e.version or 0 for e in events), default=None)
        for _ in range(MAX_CONFLICTS):
            step = advance(self.projection, doc, events)
            if step.gap:
                # Behind the stream (after a rebuild or a partial failure): the store has the rest.
                after = doc.version if doc else 0
                events = await self._read(ref, after_version=after, to_version=to_version)
                step = advance(self.projection, doc, events)
                reached = step.doc.version if step.doc else after
                if step.gap or reached < (to_version or 0):
                    raise ReplayGap(
                        f"{ref[0]} {ref[1]}: the store has no contiguous events after version "
                        f"{after} up to {to_version}; projection {self.projection.name} stops."
                    )
            if step.doc is None:
                return Applied(0, step.skipped)
            if await self._write(doc, step.doc):
                return Applied(step.applied, step.skipped)
            doc = await self.views.load(ref)  # another writer moved it first: fold onto theirs
        raise ViewContention(
            f"the {self.projection.name} view of {ref[0]} {ref[1]} changed under its writer "
            f"{MAX_CONFLICTS} times in a row; is a rebuild looping?"
        )


async def rebuild_views(
    projection: Projection,
    *,
    events: ScannableEvents,
    views: ViewStore,
    staging: ViewStaging,
    metrics: Metrics,
    progress: Callable[[int, int], None],
    chunk: int = REBUILD_CHUNK,
    upcast: Upcaster = as_written,
) -> int:
    """Build every view into a private store, swap it in, then catch up on the swap.

    Returns the number of views built. Live writers keep writing to the old views meanwhile;
    what they applied there is lost by the swap, so a catch-up pass afterwards brings every
    view that is behind the store up to date. The new documents carry a new generation, so a
    writer that read an old document cannot overwrite a rebuilt one (its guarded write
    fails, it re-reads). ``progress(done, total)`` is called with events folded.
    """
    generation = uuid.uuid4().hex[:12]
    temp = await staging.staging(generation)
    try:
        total = await events.count(sorted(projection.aggregate_types))
        progress(0, total)
        built = await _build(projection, temp, events, generation, chunk, progress, total, upcast)
        await staging.swap(temp)
    except BaseException:
        await asyncio.shield(_discard_quietly(staging, temp))
        raise
    live = ProjectionRunner(projection, views=views, events=events, metrics=metrics, upcast=upcast)
    await catch_up_all(live, events)
    return built


async def _build(
    projection: Projection,
    temp: ViewStore,
    events: ScannableEvents,
    generation: str,
    chunk: int,
    progress: Callable[[int, int], None],
    total: int,
    upcast: Upcaster,
) -> int:
    """Fold the events in (aggregate, version) order into ``temp``; return the views written."""
    current: ViewDoc | None = None
    pending: list[ViewDoc] = []
    done = built = 0
    async for event in events.scan(sorted(projection.aggregate_types)):
        if current is not None and current.ref != (event.aggregate_type, event.aggregate_id):
            pending.append(current)
            current = None
            if len(pending) >= chunk:
                await temp.insert_many(pending)
                built, pending = built + len(pending), []
        # A gap (an insert the scan did not see) leaves the rest to the catch-up pass.
        step = advance(projection, current, [upcast(event)])
        if step.doc is not None:
            current = replace(step.doc, generation=generation)
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress(done, max(total, done))
    pending += [current] if current is not None else []
    await temp.insert_many(pending)
    progress(done, max(total, done))
    return built + len(pending)


async def catch_up_all(runner: ProjectionRunner, events: ScannableEvents) -> int:
    """Bring every view that is behind the store up to date; return how many were."""
    stored = await events.versions(sorted(runner.projection.aggregate_types))
    applied = await runner.views.versions()
    behind = [ref for ref, version in stored.items() if applied.get(ref, 0) < version]
    for ref in behind:
        await runner.catch_up(ref)
    return len(behind)


async def _discard_quietly(staging: ViewStaging, temp: ViewStore) -> None:
    try:
        await staging.discard(temp)
    except EventfleetError as e:
        log.warning("could not drop %s after a failed rebuild: %s", temp.name, e)
