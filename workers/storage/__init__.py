"""EventSourcedStorage: version-checked documents whose every change is stored as an event.

Public API: ``EventSourcedStorage`` and what its signatures use (``ChangeEvents``,
``CachePolicy``, ``EventTypes``, the mappers), the ``DocumentStore`` port it keeps its
documents in (``workers.adapters.mongo.MongoDocuments``, or the in-memory
``workers.adapters.memory.MemoryDocuments``); the merge-patch helpers for clients that
rebuild documents from events; ``storage_domain``, which declares a collection to the fleet
(snapshots, routes, queries; no appends).
"""

from __future__ import annotations

from workers.storage.cache import CachePolicy, CacheStats
from workers.storage.changes import Changed, CreateOrEdit
from workers.storage.diff import apply_patch, changed_paths, merge_diff
from workers.storage.documents import DocumentDeleted, HistoryCompacted
from workers.storage.domain import storage_domain
from workers.storage.mappers import (
    ChainMapper,
    Change,
    ChangeEvents,
    DomainEvent,
    EventMapper,
    EventTypes,
    FieldChangedMapper,
)
from workers.storage.ports import (
    AFTER_DOCUMENT_WRITE,
    AFTER_EVENT_WRITE,
    DocumentStore,
    FaultHook,
    FaultPoint,
)
from workers.storage.storage import Edit, EventSourcedStorage

__all__ = [
    "AFTER_DOCUMENT_WRITE",
    "AFTER_EVENT_WRITE",
    "CachePolicy",
    "CacheStats",
    "ChainMapper",
    "Change",
    "ChangeEvents",
    "Changed",
    "CreateOrEdit",
    "DocumentDeleted",
    "DocumentStore",
    "DomainEvent",
    "Edit",
    "EventMapper",
    "EventSourcedStorage",
    "EventTypes",
    "FaultHook",
    "FaultPoint",
    "FieldChangedMapper",
    "HistoryCompacted",
    "apply_patch",
    "changed_paths",
    "merge_diff",
    "storage_domain",
]
