"""The fleet's stores in one MongoDB database, on one client of this event loop."""

from __future__ import annotations

import secrets
import uuid

from topics.errors import StoreError
from workers.adapters.mongo.actions import MongoActionLog
from workers.adapters.mongo.client import Document, MongoClient, connect, database, translated
from workers.adapters.mongo.keys import MongoKeyStore
from workers.adapters.mongo.ladder import MongoSnapshotLadder
from workers.adapters.mongo.parked import MongoParkedEvents
from workers.adapters.mongo.processes import MongoProcessInstances
from workers.adapters.mongo.stores import (
    EVENTS_ARCHIVE,
    MongoEventStore,
    MongoRejections,
    MongoSnapshotStore,
)
from workers.adapters.mongo.views import MongoViewStaging, MongoViewStore


class MongoStores:
    """The event, snapshot, rejection, view and operator-action stores of one database.

    One client per event loop (PyMongo's rule): build it inside the loop that uses it. Without a
    master key the data keys can be neither made nor opened (``ConfigError`` when asked).
    """

    def __init__(
        self, url: str, name: str, *, timeout_ms: int, master_key: bytes | None = None
    ) -> None:
        self.client: MongoClient = connect(url, timeout_ms=timeout_ms)
        self.db = database(self.client, name)
        self.events = MongoEventStore(self.db)
        self.archive = MongoEventStore(self.db, collection=EVENTS_ARCHIVE)
        self.ladder = MongoSnapshotLadder(self.db)
        self.snapshots = MongoSnapshotStore(self.db)
        self.rejections = MongoRejections(self.db)
        self.actions = MongoActionLog(self.db)
        self.parked = MongoParkedEvents(self.db)
        self.processes = MongoProcessInstances(self.db)
        self.keys = MongoKeyStore(self.db, master_key)

    def views(self, collection: str) -> MongoViewStore:
        """The view documents of the projection kept in ``collection``."""
        return MongoViewStore(self.db, collection)

    def staging(self, collection: str) -> MongoViewStaging:
        """Where a rebuild of ``collection`` builds its views before it swaps them in."""
        return MongoViewStaging(self.db, collection)

    async def open(self) -> None:
        """Create the indexes the stores rely on (idempotent)."""
        await self.events.ensure_indexes()
        await self.archive.ensure_indexes()
        await self.ladder.ensure_indexes()
        await self.keys.ensure_indexes()
        await self.parked.ensure_indexes()
        await self.processes.ensure_indexes()

    async def ping(self) -> None:
        """One round trip (the health monitor bounds it with the store's timeout)."""
        async with translated("pinging"):
            await self.client.admin.command("ping")

    async def store_id(self) -> str:
        """A random id kept in the store: marks of a store that was replaced are never read."""
        doc = await self._meta("store", {"uuid": uuid.uuid4().hex[:12]}, "reading the store id")
        return str(doc["uuid"]) if doc else "store"

    async def position_key(self) -> bytes:
        """A random key kept in the store, made by the first process that asks: the global
        read signs its positions with it, so they are this fleet's alone."""
        made = {"key": secrets.token_bytes(32)}
        doc = await self._meta("positions", made, "reading the position key")
        if doc is None or not isinstance(doc.get("key"), bytes):
            raise StoreError("the store holds no position key where it was just written")
        return bytes(doc["key"])

    async def _meta(self, doc_id: str, made: Document, what: str) -> Document | None:
        """The ``meta`` document ``doc_id``: ``made`` by the first process that asks, then read
        back as the store keeps it."""
        meta = self.db["meta"]
        async with translated(what):
            await meta.update_one({"_id": doc_id}, {"$setOnInsert": made}, upsert=True)
            return await meta.find_one({"_id": doc_id})

    async def close(self) -> None:
        await self.client.close()
