"""The one stored form of a process manager instance, shared by every adapter of the port.

Aggregate ids may hold dots, so ``seen`` is kept as pairs, not as a sub-document keyed by them.
The fields the role's polls look for are top level and present only when set: ``next_due`` (an
active instance's soonest pending deadline), ``unsent_since`` (its outbox waits) and
``attention`` (its status, when stuck or retrying), so that sparse indexes hold only the
instances that need something (an index entry costs each write, and most instances need none).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from topics.jsonvalue import Json, JsonObject
from workers.ports.process import (
    ACTIVE,
    RETRYING,
    STUCK,
    Deadline,
    Fired,
    Instance,
    PendingCommand,
    Stuck,
    Trigger,
)

ATTENTION = (STUCK, RETRYING)


def instance_id(process: str, key: str) -> str:
    """``<process>/<key>``: ``_id`` order is key order within a process."""
    return f"{process}/{key}"


def id_range(process: str, after: str | None) -> JsonObject:
    """The ``_id`` bounds of ``process``'s instances after the key ``after`` ('0' follows '/')."""
    return {"$gt": instance_id(process, after or ""), "$lt": f"{process}0"}


def to_document(instance: Instance) -> JsonObject:
    """``instance`` as stored (``_id`` ``<process>/<key>``)."""
    doc: JsonObject = {
        "_id": instance_id(instance.process, instance.key),
        "process": instance.process,
        "key": instance.key,
        "revision": instance.revision,
        "status": instance.status,
        "state": instance.state,
        "started_at": instance.started_at,
        "updated_at": instance.updated_at,
        "seen": [[key, version] for key, version in sorted(instance.seen.items())],
        "outbox": [_command(c) for c in instance.outbox],
        "deadlines": [_deadline(d) for d in instance.deadlines],
        "fired": [
            {"id": f.id, "name": f.name, "due_at": f.due_at, "fired_at": f.fired_at}
            for f in instance.fired
        ],
        "held": list(instance.held),
        "stuck": _stuck(instance.stuck) if instance.stuck is not None else None,
        "retries": instance.retries,
    }
    if instance.outbox and instance.unsent_since is not None:
        doc["unsent_since"] = instance.unsent_since
    if instance.next_due is not None:
        doc["next_due"] = instance.next_due
    if instance.status in ATTENTION:
        doc["attention"] = instance.status
    return doc


def from_document(doc: Mapping[str, Json]) -> Instance:
    return Instance(
        process=doc["process"],
        key=doc["key"],
        revision=doc["revision"],
        status=doc["status"],
        state=doc["state"],
        started_at=_utc(doc["started_at"]),
        updated_at=_utc(doc["updated_at"]),
        seen={str(key): int(version) for key, version in doc["seen"]},
        outbox=tuple(PendingCommand(**c) for c in doc["outbox"]),
        unsent_since=_utc(doc["unsent_since"]) if doc.get("unsent_since") else None,
        deadlines=tuple(_deadline_of(d) for d in doc["deadlines"]),
        fired=tuple(
            Fired(f["id"], f["name"], _utc(f["due_at"]), _utc(f["fired_at"])) for f in doc["fired"]
        ),
        held=tuple(bytes(e) for e in doc["held"]),
        stuck=_stuck_of(doc["stuck"]) if doc.get("stuck") else None,
        retries=doc.get("retries", 0),
    )


def _command(c: PendingCommand) -> JsonObject:
    return {
        "command_id": c.command_id,
        "aggregate_type": c.aggregate_type,
        "aggregate_id": c.aggregate_id,
        "type": c.type,
        "data": c.data,
        "causation_id": c.causation_id,
        "correlation_id": c.correlation_id,
    }


def _deadline(d: Deadline) -> JsonObject:
    return {
        "id": d.id,
        "name": d.name,
        "due_at": d.due_at,
        "data": d.data,
        "correlation_id": d.correlation_id,
    }


def _deadline_of(doc: Mapping[str, Json]) -> Deadline:
    return Deadline(
        doc["id"], doc["name"], _utc(doc["due_at"]), dict(doc["data"]), doc.get("correlation_id")
    )


def _stuck(s: Stuck) -> JsonObject:
    trigger = None
    if s.trigger is not None:
        deadline = s.trigger.deadline
        trigger = {
            "event": s.trigger.event,
            "deadline": _deadline(deadline) if deadline is not None else None,
        }
    return {
        "reason": s.reason,
        "detail": s.detail,
        "at": s.at,
        "trigger": trigger,
        "attempts": s.attempts,
        "resume": s.resume,
    }


def _stuck_of(doc: Mapping[str, Json]) -> Stuck:
    trigger = None
    if doc.get("trigger"):
        raw = doc["trigger"]
        trigger = Trigger(
            event=bytes(raw["event"]) if raw.get("event") is not None else None,
            deadline=_deadline_of(raw["deadline"]) if raw.get("deadline") else None,
        )
    return Stuck(
        doc["reason"],
        doc["detail"],
        _utc(doc["at"]),
        trigger,
        doc["attempts"],
        doc.get("resume", ACTIVE),
    )


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
