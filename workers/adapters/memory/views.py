"""In-memory views: named collections of view documents, and rebuilds swapped in by rename."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from topics.errors import StoreError, StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, as_stored, down_message
from workers.ports import AggregateRef, ViewDoc, ViewStaging, ViewStore

Collection = dict[AggregateRef, ViewDoc]


def _unavailable(what: str) -> StoreUnavailable:
    return StoreUnavailable(down_message("view store", what))


class MemoryDatabase(Switchable):
    """Named view collections and one outage switch, shared by the stores and stagings made on
    it."""

    def __init__(self) -> None:
        self.faults = Faults(_unavailable)
        self.collections: dict[str, Collection] = {}

    def collection_names(self) -> list[str]:
        return sorted(self.collections)


class MemoryViewStore(Switchable):
    """A projection's view documents in one collection of a ``MemoryDatabase``."""

    def __init__(self, db: MemoryDatabase, collection: str) -> None:
        self.db = db
        self.faults = db.faults  # the database's: down for one store is down for all
        self._collection = collection

    @property
    def name(self) -> str:
        return self._collection

    def _docs(self) -> Collection:
        """The collection as it is now (a rename may have replaced it; a missing one is empty)."""
        return self.db.collections.get(self._collection, {})

    async def load(self, ref: AggregateRef) -> ViewDoc | None:
        await self.faults.enter("load", f"loading the view of {ref[0]} {ref[1]}")
        found = self._docs().get(ref)
        return None if found is None else _copy(found)

    async def load_many(self, refs: Sequence[AggregateRef]) -> dict[AggregateRef, ViewDoc]:
        if not refs:
            return {}
        wanted = set(refs)
        await self.faults.enter("load_many", f"loading {len(wanted)} views")
        docs = self._docs()
        return {ref: _copy(docs[ref]) for ref in wanted if ref in docs}

    async def versions(self) -> dict[AggregateRef, int]:
        await self.faults.enter("versions", f"reading the versions of {self._collection}")
        return {ref: doc.version for ref, doc in self._docs().items()}

    async def write(self, before: ViewDoc | None, after: ViewDoc) -> bool:
        await self.faults.enter(
            "write", f"writing the view of {after.aggregate_type} {after.aggregate_id}"
        )
        docs = self.db.collections.setdefault(self._collection, {})
        stored = docs.get(after.ref)
        if before is None:
            if stored is not None:
                return False  # created meanwhile by another writer
        elif stored is None or (stored.version, stored.generation) != (
            before.version,
            before.generation,
        ):
            return False  # another writer moved it first
        docs[after.ref] = _copy(after)
        return True

    async def insert_many(self, docs: Sequence[ViewDoc]) -> None:
        if not docs:
            return
        await self.faults.enter(
            "insert_many", f"inserting {len(docs)} views into {self._collection}"
        )
        collection = self.db.collections.setdefault(self._collection, {})
        taken = []
        for doc in docs:  # unordered, as MongoDB's: every other document is still inserted
            if doc.ref in collection:
                taken.append(f"{doc.aggregate_type}:{doc.aggregate_id}")
            else:
                collection[doc.ref] = _copy(doc)
        if taken:
            raise StoreError(
                f"the in-memory view store refused inserting {len(docs)} views into "
                f"{self._collection}: {', '.join(taken)} exist already; insert_many is for a "
                "store no one else writes."
            )


class MemoryViewStaging(Switchable):
    """Rebuilds a projection into a private collection, then renames it over the live one."""

    def __init__(self, db: MemoryDatabase, collection: str) -> None:
        self.faults = db.faults
        self._db = db
        self._collection = collection

    async def staging(self, generation: str) -> MemoryViewStore:
        name = f"{self._collection}_rebuild_{generation}"
        await self.faults.enter("staging", f"creating {name}")
        if name in self._db.collections:
            raise StoreError(
                f"the in-memory view store refused creating {name}: it exists already; "
                "give each rebuild a new generation."
            )
        self._db.collections[name] = {}
        return MemoryViewStore(self._db, name)

    async def swap(self, staging: ViewStore) -> None:
        source = _ours(staging).name
        await self.faults.enter("swap", f"renaming {source} to {self._collection}")
        if source not in self._db.collections:
            raise StoreError(
                f"the in-memory view store refused renaming {source} to {self._collection}: "
                f"{source} does not exist (swapped or discarded already)."
            )
        self._db.collections[self._collection] = self._db.collections.pop(source)

    async def discard(self, staging: ViewStore) -> None:
        name = _ours(staging).name
        await self.faults.enter("discard", f"dropping {name}")
        self._db.collections.pop(name, None)


def _ours(staging: ViewStore) -> MemoryViewStore:
    if not isinstance(staging, MemoryViewStore):
        raise TypeError(f"{staging!r} was not made by MemoryViewStaging.staging")
    return staging


def _copy(doc: ViewDoc) -> ViewDoc:
    return replace(doc, view=as_stored(doc.view))


def _implements(
    store: MemoryViewStore, staging: MemoryViewStaging
) -> tuple[ViewStore, ViewStaging]:
    """Never called: mypy checks here that the classes keep the ports' signatures."""
    return store, staging
