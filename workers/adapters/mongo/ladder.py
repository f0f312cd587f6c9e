"""Snapshot ladders in MongoDB: one document per rung, found by the newest at or below a point."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from workers.adapters.mongo.client import Document, translated
from workers.adapters.mongo.stores import snapshot_document, to_snapshot
from workers.ports import AggregateRef, Snapshot

SNAPSHOT_LADDER = "snapshot_ladder"


class MongoSnapshotLadder:
    """``SnapshotLadder`` on one collection, ``_id`` = aggregate and zero-padded version."""

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = SNAPSHOT_LADDER) -> None:
        self.collection: AsyncCollection[Document] = db.get_collection(collection)

    async def ensure_indexes(self) -> None:
        async with translated("creating the snapshot ladder index"):
            await self.collection.create_index(
                [("aggregate_type", 1), ("aggregate_id", 1), ("version", DESCENDING)],
                name="aggregate_rungs",
            )

    async def add(self, rung: Snapshot, *, last_at: datetime) -> None:
        doc = {**snapshot_document(rung), "last_at": last_at}
        rung_id = _rung_id((rung.aggregate_type, rung.aggregate_id), rung.version)
        async with translated(f"adding a rung of {rung.aggregate_type} {rung.aggregate_id}"):
            await self.collection.update_one({"_id": rung_id}, {"$setOnInsert": doc}, upsert=True)

    async def below(
        self, aggregate: AggregateRef, *, version: int | None = None, as_of: datetime | None = None
    ) -> Snapshot | None:
        query: Document = {"aggregate_type": aggregate[0], "aggregate_id": aggregate[1]}
        if version is not None:
            query["version"] = {"$lte": version}
        if as_of is not None:
            query["last_at"] = {"$lte": as_of}
        async with translated(f"reading the ladder of {aggregate[0]} {aggregate[1]}"):
            doc = await self.collection.find_one(query, sort=[("version", DESCENDING)])
        return None if doc is None else to_snapshot(doc)

    async def versions(self, aggregate: AggregateRef) -> list[int]:
        query = {"aggregate_type": aggregate[0], "aggregate_id": aggregate[1]}
        async with translated(f"reading the ladder of {aggregate[0]} {aggregate[1]}"):
            docs = self.collection.find(query, {"version": 1, "_id": 0}, sort=[("version", 1)])
            return [int(d["version"]) async for d in docs]

    async def remove(self, aggregate: AggregateRef, versions: Sequence[int]) -> None:
        if not versions:
            return
        ids = [_rung_id(aggregate, v) for v in versions]
        async with translated(f"thinning the ladder of {aggregate[0]} {aggregate[1]}"):
            await self.collection.delete_many({"_id": {"$in": ids}})


def _rung_id(aggregate: AggregateRef, version: int) -> str:
    return f"{aggregate[0]}|{aggregate[1]}|{version:020d}"
