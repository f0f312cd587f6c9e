"""Parked aggregates in MongoDB, next to the event store: one document per parked event.

The ``_id`` is the entry's source (``<topic>/<partition>/<offset>``): parking a redelivered
record again keeps the first entry and its seq. Queues are read in ``seq`` order per ``key``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from topics.errors import NotFound
from workers.adapters.mongo.client import Document, durable, translated
from workers.ports import ParkedEntry, Record, check_head

PARKED_COLLECTION = "parked"
HEADS_PER_READ = 256  # ids per $in: SecantusDB's grows superlinearly (see FIND_IDS)


class MongoParkedEvents:
    """``ParkedEvents`` on the ``parked`` collection."""

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = PARKED_COLLECTION) -> None:
        self.collection = durable(db, collection)

    async def ensure_indexes(self) -> None:
        async with translated("creating the parked index", write=True):
            await self.collection.create_index([("key", ASCENDING), ("seq", ASCENDING)])

    async def park(self, entries: Sequence[ParkedEntry]) -> None:
        if not entries:
            return
        requests = [
            UpdateOne({"_id": e.source}, {"$setOnInsert": _document(e)}, upsert=True)
            for e in entries
        ]
        async with translated(f"parking {len(entries)} events", write=True):
            await self.collection.bulk_write(requests, ordered=True)

    async def sources(self, sources: Sequence[str]) -> set[str]:
        if not sources:
            return set()
        async with translated(f"looking up {len(sources)} parked records"):
            cursor = self.collection.find({"_id": {"$in": list(sources)}}, {"_id": 1})
            return {doc["_id"] async for doc in cursor}

    async def heads(self, keys: Sequence[str] | None = None) -> dict[str, tuple[ParkedEntry, int]]:
        if keys is not None and not keys:
            return {}
        query: Document = {} if keys is None else {"key": {"$in": sorted(set(keys))}}
        async with translated("reading parked aggregates"):
            cursor = self.collection.find(query, {"key": 1, "seq": 1})  # never the values
            seqs: dict[str, dict[int, str]] = {}
            async for doc in cursor:
                seqs.setdefault(doc["key"], {})[doc["seq"]] = doc["_id"]
            ids = [numbers[min(numbers)] for numbers in seqs.values()]
            found: dict[str, tuple[ParkedEntry, int]] = {}
            for i in range(0, len(ids), HEADS_PER_READ):
                async for doc in self.collection.find(
                    {"_id": {"$in": ids[i : i + HEADS_PER_READ]}}
                ):
                    found[doc["key"]] = (_entry(doc), max(seqs[doc["key"]]))
        return found

    async def queue(self, key: str, *, limit: int) -> list[ParkedEntry]:
        async with translated(f"reading the parked queue of {key}"):
            cursor = self.collection.find({"key": key}).sort("seq", ASCENDING).limit(limit)
            return [_entry(doc) async for doc in cursor]

    async def resolve(self, key: str, seq: int, resolution: str, by: str) -> ParkedEntry:
        head = (await self.heads([key])).get(key)
        if head is None:
            raise NotFound(f"{key} is not parked: it has no queue (released already?).")
        check_head(head[0], seq)
        source = head[0].source
        async with translated(f"resolving the head of {key}", write=True):
            # The head as this write left it: the appender may release a resolved head at once.
            doc = await self.collection.find_one_and_update(
                {"_id": source, "resolution": None},
                {"$set": {"resolution": resolution, "by": by}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:  # resolved already (the first resolution stays), or released
                doc = await self.collection.find_one({"_id": source})
        if doc is None:
            raise NotFound(f"{key} was released meanwhile: its head is gone.")
        return _entry(doc)

    async def relabel(self, source: str, reason: str, detail: str) -> None:
        async with translated(f"relabelling parked entry {source}", write=True):
            await self.collection.update_one(
                {"_id": source}, {"$set": {"reason": reason, "detail": detail}}
            )

    async def remove(self, sources: Sequence[str]) -> None:
        if not sources:
            return
        async with translated(f"releasing {len(sources)} parked events", write=True):
            await self.collection.delete_many({"_id": {"$in": list(sources)}})


def _document(entry: ParkedEntry) -> Document:
    r = entry.record
    return {
        "key": entry.key,
        "seq": entry.seq,
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "record_key": r.key,
        "value": r.value,
        "headers": [[name, value] for name, value in r.headers],
        "reason": entry.reason,
        "detail": entry.detail,
        "event_id": entry.event_id,
        "parked_at": entry.parked_at,
        "resolution": entry.resolution,
        "by": entry.by,
    }


def _entry(doc: Document) -> ParkedEntry:
    record = Record(
        topic=doc["topic"],
        partition=doc["partition"],
        offset=doc["offset"],
        key=bytes(doc["record_key"]) if doc.get("record_key") is not None else None,
        value=bytes(doc["value"]),
        headers=tuple((str(n), bytes(v)) for n, v in doc.get("headers", ())),
    )
    return ParkedEntry(
        key=doc["key"],
        seq=doc["seq"],
        record=record,
        reason=doc["reason"],
        detail=doc["detail"],
        event_id=doc.get("event_id"),
        parked_at=doc["parked_at"].astimezone(UTC),
        resolution=doc.get("resolution"),
        by=doc.get("by"),
    )
