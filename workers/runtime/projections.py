"""Projections: declared consumers of events.stored that keep read models (views) in MongoDB.

Each projection runs as its own agent (``projection-<name>``; its own consumer group when
run with ``--role projection``). Application is idempotent and ordered per aggregate: the
view keeps its applied version, redeliveries are skipped, and a gap (after a rebuild or a
partial failure) is filled from the event store before anything newer is applied. Writes
are guarded on (version, generation), so neither a second worker nor a rebuild running
next to the fleet can move a view backwards.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TextIO

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from topics.errors import EventfleetError, InvalidInput
from workers.adapters.mongo import (
    Document,
    MongoEventStore,
    database,
    document_to_event,
    translated,
)
from workers.metrics import Metrics
from workers.roles.deadletter import decode_stored
from workers.roles.retry import until_done
from workers.roles.views import MongoViewStore, Projection, ProjectionRunner, ViewDoc, advance
from workers.runtime.chat import CHAT_MESSAGES
from workers.runtime.settings import Settings

if TYPE_CHECKING:
    from workers.runtime.compose import Runtime
    from workers.runtime.fleet import Fleet

log = logging.getLogger(__name__)

PROJECTIONS: Mapping[str, Projection] = MappingProxyType({p.name: p for p in (CHAT_MESSAGES,)})
"""Every projection the fleet can run, by name."""


class UnknownProjection(InvalidInput):
    """No projection of that name is declared."""


def projection_named(name: str) -> Projection:
    try:
        return PROJECTIONS[name]
    except KeyError:
        raise UnknownProjection(
            f"no projection is named {name!r}; known: {', '.join(sorted(PROJECTIONS))}."
        ) from None


def register_projection_agents(fleet: Fleet, names: Collection[str]) -> None:
    """Declare one agent ``projection-<name>`` on events.stored per named projection."""
    for name in sorted(names):
        _register(fleet, projection_named(name))


def _register(fleet: Fleet, projection: Projection) -> None:
    from workers.runtime.agents import (
        to_record,  # workers.runtime.agents imports this module: import late
    )

    app, rt, settings = fleet.app, fleet.runtime, fleet.runtime.settings
    runner = ProjectionRunner.for_runtime(rt, projection)
    name = f"projection-{projection.name}"
    within_s = settings.batch_within_ms / 1000
    stored = app.topic(rt.names.stored, value_serializer="raw", key_serializer="raw")
    lag = LagGauge(fleet, projection.name)

    async def project(stream: Any) -> None:
        async for batch in stream.noack_take(settings.batch_size, within=within_s):
            failed = False
            async with fleet.batch("projection"):
                records = [to_record(event) for event in batch]
                pairs, letters = decode_stored(records, max_event_bytes=settings.max_event_bytes)
                if letters:
                    send = partial(rt.dead_letters["projection"].send, letters)
                    await until_done(send, role="projection", metrics=rt.metrics)
                events = [event for event, _ in pairs]
                try:
                    await until_done(
                        partial(runner.handle, events), role="projection", metrics=rt.metrics
                    )
                except Exception as e:  # a non-retriable failure: stop rather than skip events
                    fleet.fatal(name, e)
                    failed = True
                else:
                    for event in batch:
                        await stream.ack(event)
                    lag.after(batch)
            if failed:
                await asyncio.Future()  # unacked: parked until the draining app cancels us

    app.agent(stored, name=name)(project)


class LagGauge:
    """``projection_lag`` per partition: high-water mark minus the next offset to apply."""

    def __init__(self, fleet: Fleet, projection: str) -> None:
        self._fleet = fleet
        self._gauge = fleet.runtime.metrics.projection_lag
        self._projection = projection
        self._partitions: set[int] = set()

    def after(self, batch: Sequence[Any]) -> None:
        """Record the lag on every partition of an applied batch; forget revoked partitions."""
        last: dict[Any, int] = {}
        for event in batch:
            message = event.message
            last[message.tp] = max(last.get(message.tp, -1), message.offset)
        consumer: Any = self._fleet.app.consumer
        try:
            assigned = {tp.partition for tp in consumer.assignment()}
            for tp, offset in last.items():
                lag = max(0, (consumer.highwater(tp) or 0) - offset - 1)
                self._gauge.labels(self._projection, str(tp.partition)).set(lag)
                self._partitions.add(tp.partition)
        except Exception:  # mid-rebalance: the next batch records it
            return
        for partition in self._partitions - assigned:
            self._gauge.remove(self._projection, str(partition))
        self._partitions &= assigned


REBUILD_CHUNK = 200
"""View documents per bulk insert while rebuilding."""
PROGRESS_EVERY = 1000


async def rebuild(runtime: Runtime, name: str, *, progress: Callable[[int, int], None]) -> int:
    """Recompute projection ``name`` from the event store while the fleet keeps running.

    Returns the number of views built; ``progress(done, total)`` is called with events folded.
    """
    projection = projection_named(name)
    db = database(runtime.mongo, runtime.settings.mongo_database)
    return await rebuild_views(
        projection, db=db, events=runtime.events, metrics=runtime.metrics, progress=progress
    )


async def rebuild_views(
    projection: Projection,
    *,
    db: AsyncDatabase[Document],
    events: MongoEventStore,
    metrics: Metrics,
    progress: Callable[[int, int], None],
    chunk: int = REBUILD_CHUNK,
) -> int:
    """Build every view into a private collection, swap it in, then catch up on the swap.

    Live writers keep writing to the old collection meanwhile; what they applied there is
    lost by the swap, so a catch-up pass afterwards brings every view that is behind the
    store up to date. The new documents carry a new generation, so a writer that read an
    old document cannot overwrite a rebuilt one (its guarded write fails, it re-reads).
    """
    generation = uuid.uuid4().hex[:12]
    temp = MongoViewStore(db, f"{projection.collection}_rebuild_{generation}")
    query = {"aggregate_type": {"$in": sorted(projection.aggregate_types)}}
    try:
        await temp.create()
        async with translated(f"counting the events of {projection.name}"):
            total = await events.collection.count_documents(query)
        progress(0, total)
        built = await _build(projection, temp, events, query, generation, chunk, progress, total)
        await temp.replace_collection(projection.collection)
    except BaseException:
        await asyncio.shield(_drop_quietly(temp))
        raise
    live = ProjectionRunner(
        projection, views=MongoViewStore(db, projection.collection), events=events, metrics=metrics
    )
    await _catch_up(live, events, query)
    return built


async def _build(
    projection: Projection,
    temp: MongoViewStore,
    events: MongoEventStore,
    query: Document,
    generation: str,
    chunk: int,
    progress: Callable[[int, int], None],
    total: int,
) -> int:
    """Fold the events in (aggregate, version) order into ``temp``; return the views written."""
    order = [("aggregate_type", ASCENDING), ("aggregate_id", ASCENDING), ("version", ASCENDING)]
    current: ViewDoc | None = None
    pending: list[ViewDoc] = []
    done = built = 0
    async with translated(f"reading the events of {projection.name}"):
        async for raw in events.collection.find(query, sort=order):
            event = document_to_event(raw)
            if current is not None and current.ref != (event.aggregate_type, event.aggregate_id):
                pending.append(current)
                current = None
                if len(pending) >= chunk:
                    await temp.insert_many(pending)
                    built, pending = built + len(pending), []
            # A gap (an insert the scan did not see) leaves the rest to the catch-up pass.
            step = advance(projection, current, [event])
            if step.doc is not None:
                current = replace(step.doc, generation=generation)
            done += 1
            if done % PROGRESS_EVERY == 0:
                progress(done, max(total, done))
    pending += [current] if current is not None else []
    await temp.insert_many(pending)
    progress(done, max(total, done))
    return built + len(pending)


async def _catch_up(runner: ProjectionRunner, events: MongoEventStore, query: Document) -> int:
    """Bring every view that is behind the store up to date; return how many were."""
    group = {"_id": {"t": "$aggregate_type", "i": "$aggregate_id"}, "v": {"$max": "$version"}}
    async with translated("reading the last version of every aggregate"):
        cursor = await events.collection.aggregate([{"$match": query}, {"$group": group}])
        stored = {(d["_id"]["t"], d["_id"]["i"]): int(d["v"]) async for d in cursor}
    applied = await runner.views.versions()
    behind = [ref for ref, version in stored.items() if applied.get(ref, 0) < version]
    for ref in behind:
        await runner.catch_up(ref)
    return len(behind)


async def _drop_quietly(store: MongoViewStore) -> None:
    try:
        await store.drop()
    except EventfleetError as e:
        log.warning("could not drop %s after a failed rebuild: %s", store.collection.name, e)


def progress_printer(name: str, stream: TextIO = sys.stderr) -> Callable[[int, int], None]:
    """A ``progress`` callback that redraws one line: ``rebuilding NAME: done/total events``."""

    def show(done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        end = "\n" if done >= total else ""
        print(f"\rrebuilding {name}: {done}/{total} events ({percent}%)", end=end, file=stream)
        stream.flush()

    return show


async def run_rebuild(settings: Settings, name: str) -> int:
    """``eventfleet projections rebuild NAME``: rebuild with progress on stderr; exit code."""
    from workers.runtime.compose import Runtime

    projection_named(name)  # an unknown name fails before any connection is made
    runtime = await Runtime.start(settings)
    try:
        views = await rebuild(runtime, name, progress=progress_printer(name))
    finally:
        await runtime.stop()
    print(f"rebuilt {name}: {views} views")
    return 0
