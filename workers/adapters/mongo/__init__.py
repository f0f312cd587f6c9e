"""MongoDB adapters: the event, snapshot, view, rejection and document stores, the operator
trail and the process manager instances; driver errors are translated here, once."""

from __future__ import annotations

from workers.adapters.mongo.actions import ACTIONS, MongoActionLog
from workers.adapters.mongo.client import (
    Document,
    MongoClient,
    connect,
    database,
    escaped,
)
from workers.adapters.mongo.documents import MongoDocuments
from workers.adapters.mongo.fleet import MongoStores
from workers.adapters.mongo.keys import DATA_KEYS, ERASURES, MongoKeyStore
from workers.adapters.mongo.ladder import SNAPSHOT_LADDER, MongoSnapshotLadder
from workers.adapters.mongo.processes import PROCESSES, MongoProcessInstances
from workers.adapters.mongo.stores import (
    EVENTS,
    EVENTS_ARCHIVE,
    REJECTIONS,
    SNAPSHOTS,
    MongoEventStore,
    MongoRejections,
    MongoSnapshotStore,
)
from workers.adapters.mongo.views import (
    MongoViewStaging,
    MongoViewStore,
)

__all__ = [
    "ACTIONS",
    "DATA_KEYS",
    "ERASURES",
    "EVENTS",
    "EVENTS_ARCHIVE",
    "PROCESSES",
    "REJECTIONS",
    "SNAPSHOTS",
    "SNAPSHOT_LADDER",
    "Document",
    "MongoActionLog",
    "MongoClient",
    "MongoDocuments",
    "MongoEventStore",
    "MongoKeyStore",
    "MongoProcessInstances",
    "MongoRejections",
    "MongoSnapshotLadder",
    "MongoSnapshotStore",
    "MongoStores",
    "MongoViewStaging",
    "MongoViewStore",
    "connect",
    "database",
    "escaped",
]
