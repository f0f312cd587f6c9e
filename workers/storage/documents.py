"""The stored shape of a document and the checks every input passes before anything is written.

A stored document is ``{"_id", "version", **content}``; the version's field name is a setting of
the storage (``version_field``; ``version`` by default). Two field
names are the
storage's own: ``_deleted`` marks a tombstone (a deleted document whose version lives
on) and ``_pending_event`` holds the event of a change that is written but whose event
is not yet stored (the intent path of a store without transactions, see ``ports``).
Callers never see them.
"""

from __future__ import annotations

import os
import re
import time

from topics.envelope import AGGREGATE_ID_RE, AGGREGATE_TYPE_RE, MAX_DATA_DEPTH, Event, validate_data
from topics.errors import (
    ConcurrencyConflict,
    HistoryGone,
    InvalidEnvelope,
    InvalidInput,
    NotFound,
    StoreError,
)
from topics.jsonvalue import Json
from workers.storage.diff import same
from workers.storage.ports import Document

ID = "_id"
VERSION = "version"
DELETED = "_deleted"
PENDING_EVENT = "_pending_event"
RESERVED = frozenset((DELETED, PENDING_EVENT))
FLEET_COLLECTIONS = frozenset(("events", "snapshots"))
"""The collections of the fleet's event and snapshot stores: no storage may take their names."""
_CONTENT_DEPTH = MAX_DATA_DEPTH - 2
"""Content travels in the event as ``data.diff.<content>``: leave room for those two levels."""


class DocumentDeleted(NotFound):
    """The document was deleted; its tombstone keeps the version and its events remain."""


class HistoryCompacted(HistoryGone):
    """Events a reader asked for are in neither the hot events nor the archive (removed outside
    the storage, or an archive that was dropped): the answer says so, never a silent gap.
    ``whole_from`` is the first version of the unbroken history that reaches the newest."""

    def __init__(self, collection: str, doc_id: str, after_version: int, whole_from: int) -> None:
        super().__init__(
            f"{collection} {doc_id}: its history is compacted before version {whole_from}, so "
            f"the events after version {after_version} cannot all be read; fetch the document "
            f"(get) and ask for the events after its version (those from version {whole_from} "
            "on can be read).",
            after_version=after_version,
            whole_from=whole_from,
        )


def new_id() -> str:
    """A fresh document id: 24 hex digits, time first, as a MongoDB ObjectId string is."""
    return f"{int(time.time()):08x}{os.urandom(8).hex()}"


def missing(collection: str, doc_id: str) -> NotFound:
    return NotFound(f"{collection} {doc_id} does not exist; create it with find_one_and_upsert.")


def deleted(collection: str, stored: Document, version_field: str = VERSION) -> DocumentDeleted:
    return DocumentDeleted(
        f"{collection} {stored[ID]} was deleted at version {stored[version_field]}; its events "
        "remain (get_missing_events), and find_one_and_upsert creates it again."
    )


def check_id(collection: str, doc_id: object) -> str:
    """Document ids are strings usable as aggregate ids (and so in HTTP paths and Kafka keys)."""
    if not isinstance(doc_id, str) or not AGGREGATE_ID_RE.match(doc_id):
        raise InvalidInput(
            f"{collection}: document id {doc_id!r} is not valid; use a string of 1-128 letters, "
            "digits or '_.:@-' that starts with a letter or digit."
        )
    return doc_id


def check_client_id(client_id: object) -> str:
    if not isinstance(client_id, str) or not 0 < len(client_id) <= 256:
        raise InvalidInput(f"client_id {client_id!r} is not valid; use a string of 1-256 chars.")
    return client_id


def check_after_version(after_version: object) -> int:
    if isinstance(after_version, bool) or not isinstance(after_version, int) or after_version < 0:
        raise InvalidInput(
            f"after_version {after_version!r} is not valid; use the last version the client "
            "has, an integer >= 0 (0 for everything)."
        )
    return after_version


def content_of(stored: Document, version_field: str = VERSION) -> Document:
    """The caller's fields of a stored document: everything but id, version and our markers."""
    return {k: v for k, v in stored.items() if k not in (ID, version_field) and k not in RESERVED}


def public(stored: Document) -> Document:
    """A stored document as callers see it: without the storage's markers."""
    return {k: v for k, v in stored.items() if k not in RESERVED}


def is_deleted(stored: Document) -> bool:
    return bool(stored.get(DELETED))


def check_new(
    collection: str, doc: object, generated_id: str, version_field: str = VERSION
) -> tuple[str, Document]:
    """Validate a document to create; return its id (``generated_id`` if it has none) and
    content."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"{collection}: a document must be a dict, got {type(doc).__name__}.")
    doc_id = check_id(collection, doc.get(ID, generated_id))
    if doc.get(version_field) is not None:
        raise InvalidInput(
            f"{collection} {doc_id}: the storage sets {version_field!r} (1 on creation); "
            "leave it out of a new document."
        )
    content = {k: v for k, v in doc.items() if k not in (ID, version_field)}
    check_content(collection, doc_id, content)
    return doc_id, content


def check_edited(
    collection: str, current: Document, edited: object, version_field: str = VERSION
) -> Document:
    """Validate what an edit returned; return its content. ``_id`` and the version must not move."""
    where = f"{collection} {current[ID]}"
    if not isinstance(edited, dict):
        raise InvalidInput(
            f"{where}: the edit returned {type(edited).__name__}; return the changed document."
        )
    for name in (ID, version_field):
        if name not in edited or not same(edited[name], current[name]):
            raise InvalidInput(
                f"{where}: the edit changed {name!r} from {current[name]!r} to "
                f"{edited.get(name)!r}; the storage owns it, leave it as it is."
            )
    content = {k: v for k, v in edited.items() if k not in (ID, version_field)}
    check_content(collection, current[ID], content)
    return content


def check_content(collection: str, doc_id: str, content: Document) -> None:
    """JSON only, keys safe for MongoDB, no null in an object, no reserved field names."""
    where = f"{collection} {doc_id}"
    reserved = sorted(RESERVED & content.keys())
    if reserved:
        raise InvalidInput(f"{where}: field {reserved[0]!r} is reserved by the storage; rename it.")
    try:
        validate_data(content, "document")
        _check_depth_and_nulls(content, "document", 0)
    except InvalidEnvelope as e:
        raise InvalidInput(f"{where}: {e}; nothing was written.") from e


def _check_depth_and_nulls(value: Json, path: str, depth: int) -> None:
    if depth > _CONTENT_DEPTH:
        raise InvalidEnvelope(path, f"nested deeper than {_CONTENT_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if item is None:
                raise InvalidEnvelope(
                    f"{path}.{key}",
                    "null inside an object cannot be told from a removal in a JSON Merge "
                    "Patch (RFC 7386); remove the field instead",
                )
            _check_depth_and_nulls(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if item is not None:
                _check_depth_and_nulls(item, f"{path}[{index}]", depth + 1)


_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def check_version_field(collection: str, version_field: object) -> str:
    """The version's field name: a plain top-level field, not ``_id`` nor the storage's own."""
    if not isinstance(version_field, str) or not _FIELD_NAME.match(version_field):
        raise InvalidInput(
            f"{collection}: version_field {version_field!r} is not valid; use a top-level field "
            "name of 1-64 letters, digits or '_' that starts with a letter (e.g. 'version')."
        )
    return version_field


def check_settings(collection_name: object, max_retries: object) -> None:
    if not isinstance(collection_name, str) or not AGGREGATE_TYPE_RE.match(collection_name):
        raise InvalidInput(
            f"collection name {collection_name!r} is not valid: it is the events' aggregate type, "
            f"so it must match {AGGREGATE_TYPE_RE.pattern} (lower case, e.g. 'game_states')."
        )
    if collection_name in FLEET_COLLECTIONS:
        raise InvalidInput(
            f"collection {collection_name!r} is the fleet's own; choose another name."
        )
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidInput(f"max_retries={max_retries!r}: use an integer >= 0.")


def gave_up(collection: str, doc_id: str, seen: list[int | None]) -> ConcurrencyConflict:
    """Why optimistic concurrency gave up on ``doc_id`` after the versions it ``seen``."""
    where = f"{collection} {doc_id}: gave up after {len(seen)} attempts"
    if seen[0] != seen[-1]:
        return ConcurrencyConflict(
            f"{where}; other writers changed it each time between read and write (read "
            f"versions {seen[0]} to {seen[-1]}). Nothing was written; try again, or raise "
            "max_retries."
        )
    return ConcurrencyConflict(
        f"{where}; it stayed at version {seen[0]} but every write conflicted, so another "
        "transaction holds it (one whose client died holds it until the server ends its "
        "session). Nothing was written; try again later."
    )


def disagree(event: Event, doc_id: str) -> StoreError:
    """The event store holds another event at the version of ``doc_id``'s change."""
    return StoreError(
        f"{event.aggregate_type} {doc_id}: the event store already holds another event at "
        f"version {event.version}, so the collection and the event store disagree (was the "
        "document removed or rewritten outside the storage?)."
    )
