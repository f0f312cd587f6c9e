"""MongoDB adapters: the event, snapshot, view, rejection and document stores and the operator
trail; driver errors are translated here, once."""

from __future__ import annotations

from topics.errors import StoreError
from workers.adapters.mongo.actions import ACTIONS, MongoActionLog
from workers.adapters.mongo.client import (
    DURABLE,
    Document,
    MongoClient,
    connect,
    database,
    escaped,
    log,
    translated,
)
from workers.adapters.mongo.documents import MongoDocuments
from workers.adapters.mongo.fleet import MongoStores
from workers.adapters.mongo.stores import (
    EVENTS,
    PENDING,
    PENDING_INDEX,
    REJECTIONS,
    SNAPSHOTS,
    MongoEventStore,
    MongoRejections,
    MongoSnapshotStore,
    snapshot_id,
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
    "MongoClient",
    "MongoDocuments",
    "MongoEventStore",
    "MongoRejections",
    "MongoSnapshotStore",
    "MongoStores",
    "MongoViewStaging",
    "MongoViewStore",
    "StoreError",
    "connect",
    "database",
    "escaped",
    "from_document",
    "log",
    "snapshot_id",
    "to_document",
    "translated",
]
