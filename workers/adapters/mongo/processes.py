"""Process manager instances in MongoDB: one journaled document per instance, written whole and
only over the revision it was read at (a replace filtered on ``revision``, or an insert)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from workers.adapters.instances import from_document, instance_id, to_document
from workers.adapters.mongo.client import DURABLE, Document, translated
from workers.ports.process import RETRYING, STATUSES, STUCK, Instance

PROCESSES = "process_instances"


class MongoProcessInstances:
    """``ProcessInstances`` on the ``process_instances`` collection."""

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = PROCESSES) -> None:
        self.collection: AsyncCollection[Document] = db.get_collection(
            collection, write_concern=DURABLE
        )

    async def ensure_indexes(self) -> None:
        async with translated("creating the process instance indexes", write=True):
            await self.collection.create_index([("next_due", ASCENDING)])
            await self.collection.create_index([("unsent_since", ASCENDING)])
            await self.collection.create_index([("status", ASCENDING)])
            await self.collection.create_index([("process", ASCENDING), ("key", ASCENDING)])
            await self.collection.create_index([("process", ASCENDING), ("next_due", ASCENDING)])

    async def load(self, process: str, keys: Sequence[str]) -> dict[str, Instance]:
        if not keys:
            return {}
        ids = [instance_id(process, key) for key in sorted(set(keys))]
        async with translated(f"loading {len(ids)} instances of {process}"):
            cursor = self.collection.find({"_id": {"$in": ids}})
            found = [from_document(doc) async for doc in cursor]
        return {i.key: i for i in found}

    async def save(self, instance: Instance) -> bool:
        doc = to_document(instance)
        what = f"saving instance {doc['_id']} at revision {instance.revision}"
        async with translated(what, write=True):
            if instance.revision == 1:
                try:
                    await self.collection.insert_one(doc)
                except DuplicateKeyError:
                    return False
                return True
            result = await self.collection.replace_one(
                {"_id": doc["_id"], "revision": instance.revision - 1}, doc
            )
        return result.matched_count == 1

    async def due(self, now: datetime, *, limit: int) -> list[Instance]:
        return await self._find(
            {"next_due": {"$ne": None, "$lte": now}}, "next_due", limit, "reading due deadlines"
        )

    async def retrying(self, *, limit: int) -> list[Instance]:
        return await self._find({"status": RETRYING}, "_id", limit, "reading instances to retry")

    async def unsent(self, before: datetime, *, limit: int) -> list[Instance]:
        query = {"unsent_since": {"$ne": None, "$lte": before},
                 "status": {"$nin": [STUCK, RETRYING]}}  # fmt: skip
        return await self._find(query, "unsent_since", limit, "reading unsent commands")

    async def page(
        self, process: str, *, status: str | None = None, after: str | None = None, limit: int
    ) -> list[Instance]:
        query: Document = {"process": process}
        if status is not None:
            query["status"] = status
        if after is not None:
            query["key"] = {"$gt": after}
        return await self._find(query, "key", limit, f"listing instances of {process}")

    async def upcoming(self, process: str, *, limit: int) -> list[Instance]:
        query = {"process": process, "next_due": {"$ne": None}}
        return await self._find(query, "next_due", limit, f"reading deadlines of {process}")

    async def counts(self, process: str) -> dict[str, int]:
        found = {}
        async with translated(f"counting instances of {process}"):
            for status in STATUSES:
                found[status] = await self.collection.count_documents(
                    {"process": process, "status": status}
                )
        return found

    async def _find(self, query: Document, order: str, limit: int, what: str) -> list[Instance]:
        async with translated(what):
            cursor = self.collection.find(query).sort(order, ASCENDING).limit(limit)
            return [from_document(doc) async for doc in cursor]
