"""Read models: the Projection declaration, its pure version-guarded fold, the view store, the runner.

A view document holds one aggregate's view plus the last version folded into it, so a
redelivered event (version <= applied) changes nothing. ``generation`` names the rebuild
that produced the document; a write is guarded on (version, generation), so a writer that
read a document before a rebuild swapped the collection cannot overwrite the rebuilt one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from snapshot_rules.replay import ReplayGap
from topics.envelope import Event
from topics.errors import EventfleetError
from workers.adapters.mongo import Document, StoreError, database, snapshot_id, translated
from workers.metrics import Metrics
from workers.ports import AggregateRef, EventStore

if TYPE_CHECKING:
    from workers.runtime.compose import Runtime

View = dict[str, Any]
Apply = Callable[[View | None, Event], View]

LIVE = "live"
"""Generation of documents created by live application before any rebuild."""


@dataclass(frozen=True, slots=True)
class Projection:
    """A read model in ``collection``: one view per aggregate, folded by the pure ``apply``."""

    name: str
    collection: str
    aggregate_types: frozenset[str]
    apply: Apply

    def wants(self, event: Event) -> bool:
        return event.aggregate_type in self.aggregate_types


@dataclass(frozen=True, slots=True)
class ViewDoc:
    """One aggregate's view and the last event version folded into it."""

    aggregate_type: str
    aggregate_id: str
    version: int
    view: View
    generation: str = LIVE

    @property
    def ref(self) -> AggregateRef:
        return (self.aggregate_type, self.aggregate_id)


@dataclass(frozen=True, slots=True)
class Advanced:
    """What ``advance`` did: the new document (None: unchanged) and what it applied or skipped."""

    doc: ViewDoc | None
    applied: int
    skipped: int
    gap: bool  # an event after a missing version was met; read the missing ones from the store


def advance(projection: Projection, doc: ViewDoc | None, events: Iterable[Event]) -> Advanced:
    """Fold one aggregate's stored events (in version order) into its view document.

    An event at or below the applied version is skipped (redelivery); folding stops at the
    first event that is not the next version, and ``gap`` says so.
    """
    current, applied, skipped = doc, 0, 0
    for event in events:
        version = current.version if current else 0
        if event.version is None or event.version <= version:
            skipped += 1
            continue
        if event.version != version + 1:
            return Advanced(current if applied else None, applied, skipped, gap=True)
        view = projection.apply(current.view if current else None, event)
        generation = current.generation if current else LIVE
        current = ViewDoc(event.aggregate_type, event.aggregate_id, event.version, view, generation)
        applied += 1
    return Advanced(current if applied else None, applied, skipped, gap=False)


def to_document(doc: ViewDoc) -> Document:
    return {
        "_id": snapshot_id(doc.ref),
        "aggregate_type": doc.aggregate_type,
        "aggregate_id": doc.aggregate_id,
        "version": doc.version,
        "generation": doc.generation,
        "view": doc.view,
    }


def from_document(raw: Document) -> ViewDoc:
    return ViewDoc(
        raw["aggregate_type"],
        raw["aggregate_id"],
        int(raw["version"]),
        raw["view"],
        raw["generation"],
    )


class MongoViewStore:
    """A projection's view documents in one MongoDB collection, ``_id`` = ``<type>:<id>``."""

    def __init__(self, db: AsyncDatabase[Document], collection: str) -> None:
        self.db = db
        self.collection: AsyncCollection[Document] = db[collection]

    async def load(self, ref: AggregateRef) -> ViewDoc | None:
        async with translated(f"loading the view of {ref[0]} {ref[1]}"):
            raw = await self.collection.find_one({"_id": snapshot_id(ref)})
        return None if raw is None else from_document(raw)

    async def load_many(self, refs: Sequence[AggregateRef]) -> dict[AggregateRef, ViewDoc]:
        if not refs:
            return {}
        ids = [snapshot_id(ref) for ref in set(refs)]
        async with translated(f"loading {len(ids)} views"):
            docs = [from_document(raw) async for raw in self.collection.find({"_id": {"$in": ids}})]
        return {doc.ref: doc for doc in docs}

    async def versions(self) -> dict[AggregateRef, int]:
        """The applied version of every view (for a catch-up pass)."""
        fields = {"aggregate_type": 1, "aggregate_id": 1, "version": 1}
        async with translated(f"reading the versions of {self.collection.name}"):
            cursor = self.collection.find({}, projection=fields)
            return {
                (r["aggregate_type"], r["aggregate_id"]): int(r["version"]) async for r in cursor
            }

    async def write(self, before: ViewDoc | None, after: ViewDoc) -> bool:
        """Replace ``before`` with ``after`` unless another writer moved it first; True if written."""
        document = to_document(after)
        try:
            async with translated(
                f"writing the view of {after.aggregate_type} {after.aggregate_id}"
            ):
                if before is None:
                    await self.collection.insert_one(document)
                    return True
                guard = {"_id": document["_id"], "version": before.version}
                guard["generation"] = before.generation
                result = await self.collection.replace_one(guard, document)
        except StoreError as e:
            if isinstance(e.__cause__, DuplicateKeyError):
                return False  # created meanwhile by another writer
            raise
        return result.matched_count == 1

    async def insert_many(self, docs: Sequence[ViewDoc]) -> None:
        """Bulk insert into a collection no one else writes (a rebuild's private one)."""
        if docs:
            async with translated(f"inserting {len(docs)} views into {self.collection.name}"):
                await self.collection.insert_many([to_document(doc) for doc in docs], ordered=False)

    async def create(self) -> None:
        """Create the collection now, so an empty rebuild still has one to swap in."""
        async with translated(f"creating {self.collection.name}"):
            self.collection = await self.db.create_collection(self.collection.name)

    async def replace_collection(self, target: str) -> None:
        """Rename this collection over ``target`` (dropping it) in one server-side step."""
        async with translated(f"renaming {self.collection.name} to {target}"):
            await self.collection.rename(target, dropTarget=True)
        self.collection = self.db[target]

    async def drop(self) -> None:
        async with translated(f"dropping {self.collection.name}"):
            await self.collection.drop()


MAX_CONFLICTS = 50


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
        self, projection: Projection, *, views: MongoViewStore, events: EventStore, metrics: Metrics
    ) -> None:
        self.projection = projection
        self.views = views
        self._events = events
        self._applied = metrics.projection_events.labels(projection.name, "applied")
        self._skipped = metrics.projection_events.labels(projection.name, "skipped")

    @classmethod
    def for_runtime(cls, runtime: Runtime, projection: Projection) -> ProjectionRunner:
        db = database(runtime.mongo, runtime.settings.mongo_database)
        views = MongoViewStore(db, projection.collection)
        return cls(projection, views=views, events=runtime.events, metrics=runtime.metrics)

    async def handle(self, events: Sequence[Event]) -> Applied:
        """Apply a batch of stored events (any aggregates, each in version order)."""
        by_ref: dict[AggregateRef, list[Event]] = {}
        for event in events:
            if self.projection.wants(event):
                by_ref.setdefault((event.aggregate_type, event.aggregate_id), []).append(event)
        if not by_ref:
            return Applied()
        docs = await self.views.load_many(list(by_ref))
        results = await asyncio.gather(
            *(self._project(ref, docs.get(ref), evs) for ref, evs in by_ref.items())
        )
        return self._count(sum(results, Applied()))

    async def catch_up(self, ref: AggregateRef) -> Applied:
        """Apply whatever the store holds beyond the view's applied version."""
        doc = await self.views.load(ref)
        missing = await self._events.read(ref, after_version=doc.version if doc else 0)
        return self._count(await self._project(ref, doc, missing))

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
                events = await self._events.read(ref, after_version=after, to_version=to_version)
                step = advance(self.projection, doc, events)
                reached = step.doc.version if step.doc else after
                if step.gap or reached < (to_version or 0):
                    raise ReplayGap(
                        f"{ref[0]} {ref[1]}: the store has no contiguous events after version "
                        f"{after} up to {to_version}; projection {self.projection.name} stops."
                    )
            if step.doc is None:
                return Applied(0, step.skipped)
            if await self.views.write(doc, step.doc):
                return Applied(step.applied, step.skipped)
            doc = await self.views.load(ref)  # another writer moved it first: fold onto theirs
        raise ViewContention(
            f"the {self.projection.name} view of {ref[0]} {ref[1]} changed under its writer "
            f"{MAX_CONFLICTS} times in a row; is a rebuild looping?"
        )
