"""MongoDB adapters: the event, snapshot, view and rejection stores; driver errors are translated here, once."""

from __future__ import annotations

from topics.errors import StoreError
from workers.adapters.mongo.actions import ACTIONS, MongoActionLog
from workers.adapters.mongo.stores import (
    DURABLE,
    EVENTS,
    PENDING,
    PENDING_INDEX,
    REJECTIONS,
    SNAPSHOTS,
    Document,
    MongoEventStore,
    MongoRejections,
    MongoSnapshotStore,
    connect,
    database,
    document_to_event,
    event_to_document,
    log,
    snapshot_id,
    translated,
)
from workers.adapters.mongo.views import (
    MongoViewStaging,
    MongoViewStore,
    from_document,
    to_document,
)

__all__ = [
    "ACTIONS",
    "DURABLE",
    "EVENTS",
    "PENDING",
    "PENDING_INDEX",
    "REJECTIONS",
    "SNAPSHOTS",
    "Document",
    "MongoActionLog",
    "MongoEventStore",
    "MongoRejections",
    "MongoSnapshotStore",
    "MongoViewStaging",
    "MongoViewStore",
    "StoreError",
    "connect",
    "database",
    "document_to_event",
    "event_to_document",
    "from_document",
    "log",
    "snapshot_id",
    "to_document",
    "translated",
]
