"""Planning one change: the new stored document and the one event that records it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from topics.envelope import Event, Metadata, encode, new_event
from topics.errors import InvalidEnvelope, InvalidInput
from topics.jsonvalue import Json, JsonObject
from workers import tracing
from workers.storage import documents as docs
from workers.storage.diff import changed_paths, merge_diff
from workers.storage.documents import DELETED, ID, VERSION
from workers.storage.mappers import (
    Change,
    EventMapper,
    EventTypes,
    Operation,
    mapped_records,
)
from workers.storage.ports import Document, PlannedChange


def plan_change(
    *,
    collection: str,
    doc_id: str,
    client_id: str,
    previous: Document | None,
    before: Document | None,
    after: Document | None,
    types: EventTypes,
    mapper: EventMapper | None,
    max_event_bytes: int,
    version_field: str = VERSION,
) -> PlannedChange:
    """The step from ``previous`` (stored, or None) to content ``after`` (None: delete).

    ``before`` is the content the change starts from (None when creating). The event's
    data is ``{"operation", "diff", "changed_paths"}`` plus ``"mapped"`` when the mapper
    derived domain events; ``diff`` is the RFC 7386 merge patch from ``before`` to
    ``after`` over the caller's fields (never ``_id`` or ``version``).
    """
    operation: Operation = "delete" if after is None else "create" if before is None else "update"
    version = 1 if previous is None else int(previous[version_field]) + 1
    diff = merge_diff(before, after)
    paths = changed_paths(before, diff)
    data: JsonObject = {"operation": operation, "diff": diff, "changed_paths": paths}
    if mapper is not None:
        change = Change(
            collection, doc_id, operation, version, client_id, before, after, diff, tuple(paths)
        )
        records = mapped_records(collection, doc_id, mapper.map(change))
        if records:
            data["mapped"] = records
    try:
        event = new_event(
            collection,
            doc_id,
            types.of(operation),
            data,
            metadata=Metadata(client_id=client_id, trace_id=tracing.current_trace_id()),
            version=version,
        )
    except InvalidEnvelope as e:
        raise InvalidInput(f"{collection} {doc_id}: the change's event is not valid: {e}.") from e
    size = len(encode(event))
    if size > max_event_bytes:
        # Consumers of events.stored dead-letter larger events (Settings.max_event_bytes).
        raise InvalidInput(
            f"{collection} {doc_id}: the change's event would be {size} bytes, over the "
            f"{max_event_bytes}-byte limit of the event stream; nothing was written. Make smaller "
            "changes, or keep large values outside the document."
        )
    if after is None:
        replacement: Document = {ID: doc_id, version_field: version, DELETED: True}
    else:
        replacement = {ID: doc_id, version_field: version, **after}
    return PlannedChange(
        doc_id=doc_id,
        expected_version=None if previous is None else int(previous[version_field]),
        replacement=replacement,
        event=event,
        version_field=version_field,
    )


CreateOrEdit = Callable[[Document | None], Document | Awaitable[Document]]
"""``update``'s edit: gets the current document, or None when ``create`` makes a new one."""


@dataclass(frozen=True, slots=True)
class Changed:
    """What ``update`` did: the document now, the merge patch, the stored event (None: no
    change)."""

    document: Document
    diff: Json
    event: Event | None
    published: bool = False
    """The event reached events.stored already (an outbox is configured and Kafka acked it);
    otherwise it stays flagged and the fleet's outbox relay publishes it."""


async def applied(edit: CreateOrEdit, current: Document | None) -> Json:  # checked by the caller
    edited = edit(current)
    return await edited if inspect.isawaitable(edited) else edited


def changed(change: PlannedChange) -> tuple[PlannedChange, Changed]:
    return change, Changed(docs.public(change.replacement), change.event.data["diff"], change.event)
