"""EventSourcedStorage: version-checked MongoDB documents whose every change is stored as an event.

Public API: ``EventSourcedStorage`` and what its signatures use; the merge-patch
helpers for clients that rebuild documents from events; ``storage_domain``, which
declares a collection to the fleet (snapshots, routes, queries; no appends).
"""

from __future__ import annotations

from workers.storage.cache import CacheStats
from workers.storage.changes import Changed, CreateOrEdit
from workers.storage.diff import apply_patch, changed_paths, merge_diff
from workers.storage.documents import DocumentDeleted
from workers.storage.domain import storage_domain
from workers.storage.mappers import (
    ChainMapper,
    Change,
    DomainEvent,
    EventMapper,
    EventTypes,
    FieldChangedMapper,
)
from workers.storage.storage import Edit, EventSourcedStorage
from workers.storage.writers import AFTER_DOCUMENT_WRITE, AFTER_EVENT_WRITE, FaultHook, FaultPoint

__all__ = [
    "AFTER_DOCUMENT_WRITE",
    "AFTER_EVENT_WRITE",
    "CacheStats",
    "ChainMapper",
    "Change",
    "Changed",
    "CreateOrEdit",
    "DocumentDeleted",
    "DomainEvent",
    "Edit",
    "EventMapper",
    "EventSourcedStorage",
    "EventTypes",
    "FaultHook",
    "FaultPoint",
    "FieldChangedMapper",
    "apply_patch",
    "changed_paths",
    "merge_diff",
    "storage_domain",
]
