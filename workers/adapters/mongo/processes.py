"""Process manager instances in MongoDB: one journaled document per instance, written whole and
only over the revision it was read at (a replace filtered on ``revision``, or an insert)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING, InsertOne, ReplaceOne, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from workers.adapters.instances import from_document, id_range, instance_id, to_document
from workers.adapters.mongo.client import Document, durable, translated
from workers.ports.process import RETRYING, STATUSES, STUCK, Instance

PROCESSES = "process_instances"
DUPLICATE_KEY = 11000


class MongoProcessInstances:
    """``ProcessInstances`` on the ``process_instances`` collection."""

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = PROCESSES) -> None:
        self.collection = durable(db, collection)
        self._quick: AsyncCollection[Document] = db.get_collection(
            collection, write_concern=WriteConcern(w=1, j=False)
        )

    async def ensure_indexes(self) -> None:
        async with translated("creating the process instance indexes", write=True):
            for field in ("next_due", "unsent_since", "attention"):  # present only when set
                await self.collection.create_index([(field, ASCENDING)], sparse=True)

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

    async def save_many(self, instances: Sequence[Instance], *, durable: bool = True) -> list[bool]:
        """One unordered bulk write; where it did not write them all, each document read back
        says whether this write (its token) is the one stored."""
        if not instances:
            return []
        token = uuid.uuid4().hex
        docs = [{**to_document(i), "write": token} for i in instances]
        ops: list[InsertOne[Document] | ReplaceOne[Document]] = [
            InsertOne(doc)
            if i.revision == 1
            else ReplaceOne({"_id": doc["_id"], "revision": i.revision - 1}, doc)
            for i, doc in zip(instances, docs, strict=True)
        ]
        async with translated(f"saving {len(ops)} instances", write=True):
            try:
                target = self.collection if durable else self._quick
                result = await target.bulk_write(ops, ordered=False)
                if result.inserted_count + result.matched_count == len(ops):
                    return [True] * len(ops)
            except BulkWriteError as e:  # inserts that lost to another writer: read back
                if e.details.get("writeConcernErrors"):
                    raise  # what was written is not as durable as asked: never "saved"
                if any(err.get("code") != DUPLICATE_KEY for err in e.details["writeErrors"]):
                    raise
            ids = [doc["_id"] for doc in docs]
            cursor = self.collection.find({"_id": {"$in": ids}}, {"write": 1, "revision": 1})
            stored = {doc["_id"]: (doc.get("write"), doc["revision"]) async for doc in cursor}
        return [stored.get(doc["_id"]) == (token, doc["revision"]) for doc in docs]

    async def due(self, now: datetime, *, limit: int) -> list[Instance]:
        query = {"next_due": {"$lte": now}}
        return await self._find(query, "next_due", limit, "reading due deadlines")

    async def retrying(self, *, limit: int) -> list[Instance]:
        query = {"attention": RETRYING}
        return await self._find(query, "_id", limit, "reading instances to retry")

    async def unsent(self, before: datetime, *, limit: int) -> list[Instance]:
        query = {"unsent_since": {"$lte": before}, "attention": {"$exists": False}}
        return await self._find(query, "unsent_since", limit, "reading unsent commands")

    async def page(
        self, process: str, *, status: str | None = None, after: str | None = None, limit: int
    ) -> list[Instance]:
        """By ``_id`` (key order); stuck and retrying ones through the ``attention`` index."""
        query: Document = {"_id": id_range(process, after)}
        if status in (STUCK, RETRYING):
            query["attention"] = status
        elif status is not None:
            query["status"] = status
        return await self._find(query, "_id", limit, f"listing instances of {process}")

    async def upcoming(self, process: str, *, limit: int) -> list[Instance]:
        query = {"next_due": {"$exists": True}, "process": process}
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
