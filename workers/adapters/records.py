"""What every event-store adapter shares: the one stored form of an event and the checks and
conflicts every backend applies alike.

An event is kept as a document ``{"_id": <event id>, "aggregate_type", "aggregate_id",
"version", "type", "data", "metadata", "occurred_at", "after"[, "schema_version"]}``: the MongoDB
store writes it, the in-memory store keeps it (copied as BSON would), and both read events back
through ``document_to_event``, so a round trip is the same whichever backend made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from topics.envelope import Event, metadata_of
from topics.errors import TransactionsUnsupported
from topics.jsonvalue import JsonObject
from workers.ports import AggregateRef, AppendConflict

Document = JsonObject


def event_to_document(event: Event) -> Document:
    """The one mapping between an event and its stored document (``_id`` = event id).

    ``schema_version`` is stored only above 1: a document without it is version 1;
    ``expected_version`` only when the sender gave one.
    """
    doc: Document = {
        "_id": event.id,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "version": event.version,
        "type": event.type,
        "data": event.data,
        "metadata": event.metadata.as_dict(),
        "occurred_at": event.occurred_at,
        "after": event.after,
    }
    if event.schema_version != 1:
        doc["schema_version"] = event.schema_version
    if event.expected_version is not None:
        doc["expected_version"] = event.expected_version
    return doc


def document_to_event(doc: Document) -> Event:
    return Event(
        id=doc["_id"],
        aggregate_type=doc["aggregate_type"],
        aggregate_id=doc["aggregate_id"],
        type=doc["type"],
        version=doc["version"],
        data=doc["data"],
        metadata=metadata_of(doc["metadata"]),
        occurred_at=doc["occurred_at"].astimezone(UTC),
        after=doc.get("after"),
        schema_version=int(doc.get("schema_version", 1)),
        expected_version=doc.get("expected_version"),
    )


def check_append(events: Sequence[Event]) -> None:
    """Only numbered events are stored."""
    for event in events:
        if event.version is None:
            raise ValueError(f"event {event.id} has no version; number it before appending")


def check_read(limit: int | None) -> None:
    """The limit of a search every backend refuses alike."""
    if limit is not None and limit < 0:
        # PyMongo would read a negative limit as "abs(limit), in one batch".
        raise ValueError(f"limit must be 0 (no limit) or more, got {limit}")


def check_select(limit: int | None, types: Sequence[str] | None) -> None:
    """The arguments of ``EventStore.select`` every backend refuses alike."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"a select's limit is 1 or more, or None for every event; got {limit!r}")
    if isinstance(types, str):
        raise ValueError(f"types must be a list of event types, got the string {types!r}")


def conflict(failed: Event, inserted: int, *, id_taken: bool) -> AppendConflict:
    """An ordered append stopped at ``failed`` (``inserted`` events before it were stored)."""
    what = f"event {failed.id}" if id_taken else f"version {failed.version}"
    return AppendConflict(
        f"{failed.aggregate_type} {failed.aggregate_id}: {what} is already stored; "
        f"{'the event was redelivered' if id_taken else 'another writer appended first'}.",
        inserted=inserted,
        failed=failed,
        id_taken=id_taken,
    )


def transactions_unsupported(events: Sequence[Event]) -> TransactionsUnsupported:
    return TransactionsUnsupported(
        f"storing {len(events)} events of {len(refs_of(events))} aggregates all or none needs "
        "a MongoDB transaction, and this server is a standalone mongod, which runs none; "
        "nothing was written. Run MongoDB as a replica set (one member will do: mongod "
        "--replSet rs0, then rs.initiate()) or send each aggregate's event on its own."
    )


def refs_of(events: Sequence[Event]) -> list[AggregateRef]:
    """The aggregates of ``events``, each once, in the order they first appear."""
    return list(dict.fromkeys((e.aggregate_type, e.aggregate_id) for e in events))
