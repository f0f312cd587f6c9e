"""MongoDB adapters: the event, snapshot and view stores; driver errors are translated here, once."""

from __future__ import annotations

from workers.adapters.mongo.stores import (
    DURABLE,
    EVENTS,
    PENDING,
    SNAPSHOTS,
    Document,
    MongoEventStore,
    MongoSnapshotStore,
    StoreError,
    connect,
    database,
    document_to_event,
    event_to_document,
    snapshot_id,
    translated,
)

__all__ = [
    "DURABLE",
    "EVENTS",
    "PENDING",
    "SNAPSHOTS",
    "Document",
    "MongoEventStore",
    "MongoSnapshotStore",
    "StoreError",
    "connect",
    "database",
    "document_to_event",
    "event_to_document",
    "snapshot_id",
    "translated",
]
