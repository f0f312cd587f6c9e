"""MongoDB views: one projection's view documents in a collection, and rebuilds by rename."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from topics.errors import StoreError
from workers.adapters.mongo.client import Document, translated
from workers.adapters.mongo.stores import snapshot_id
from workers.ports import AggregateRef, ViewDoc, ViewStore


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

    @property
    def name(self) -> str:
        return self.collection.name

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
        fields = {"aggregate_type": 1, "aggregate_id": 1, "version": 1}
        async with translated(f"reading the versions of {self.collection.name}"):
            cursor = self.collection.find({}, projection=fields)
            return {
                (r["aggregate_type"], r["aggregate_id"]): int(r["version"]) async for r in cursor
            }

    async def write(self, before: ViewDoc | None, after: ViewDoc) -> bool:
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
        if docs:
            async with translated(f"inserting {len(docs)} views into {self.collection.name}"):
                await self.collection.insert_many([to_document(doc) for doc in docs], ordered=False)


class MongoViewStaging:
    """Rebuilds a projection into a private collection, then renames it over the live one."""

    def __init__(self, db: AsyncDatabase[Document], collection: str) -> None:
        self._db = db
        self._collection = collection

    async def staging(self, generation: str) -> MongoViewStore:
        name = f"{self._collection}_rebuild_{generation}"
        # Created now, so an empty rebuild still has a collection to swap in.
        async with translated(f"creating {name}"):
            await self._db.create_collection(name)
        return MongoViewStore(self._db, name)

    async def swap(self, staging: ViewStore) -> None:
        staging = _ours(staging)
        source = staging.collection.name
        async with translated(f"renaming {source} to {self._collection}"):
            await staging.collection.rename(self._collection, dropTarget=True)

    async def discard(self, staging: ViewStore) -> None:
        staging = _ours(staging)
        async with translated(f"dropping {staging.collection.name}"):
            await staging.collection.drop()


def _ours(staging: ViewStore) -> MongoViewStore:
    if not isinstance(staging, MongoViewStore):
        raise TypeError(f"{staging!r} was not made by MongoViewStaging.staging")
    return staging
