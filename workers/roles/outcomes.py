"""What became of a command: the outcome values the command side answers with, and the query.

Role logic decides outcomes; the runtime turns them into statuses (``workers.runtime.answers``).
An outcome is also what the command memory keeps for a command id, so a retry learns the
command's true fate: accepted and then stored or refused at the store, unknown, or refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from snapshot_rules.domain import Domains, Mode
from topics.envelope import Actor, aggregate_key, command_scope, derived_event_id
from topics.errors import InvalidInput
from topics.frozen import slot_init
from topics.jsonvalue import Json, JsonObject
from workers.ports import (
    STORE_VERDICTS,
    CommandMemory,
    CommandRecord,
    EventStore,
    Rejection,
    Rejections,
)


@slot_init
@dataclass(frozen=True, slots=True)
class Accepted:
    """Async mode: the event is on the events topic; the appender stores or refuses it."""

    event_id: str
    partition: int | None = None
    offset: int | None = None
    version: int | None = None  # known when a retry found it stored
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """Sync mode: the event is stored at ``version`` (``published``: on events.stored)."""

    event_id: str
    version: int
    published: bool = True
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    """The input, the domain or the store says no (a registered error code); nothing stored."""

    code: str
    message: str
    details: Mapping[str, Json] = field(default_factory=dict)
    at_store: bool = False  # accepted earlier, refused by the store
    duplicate: bool = False  # a retry told the recorded refusal


@dataclass(frozen=True, slots=True)
class Unknown:
    """Sent without an answer: it may still be stored. Retrying with the command id is safe."""

    event_id: str
    command_id: str | None
    message: str
    service: str = "stream"


@dataclass(frozen=True, slots=True)
class NotDone:
    """Nothing was written (a dependency did not answer, or the store must catch up first)."""

    code: str
    message: str
    service: str
    details: Mapping[str, Json] = field(default_factory=dict)


Outcome = Accepted | Stored | Refused | Unknown | NotDone


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One event of an append across aggregates, as stored."""

    aggregate_type: str
    aggregate_id: str
    event_id: str
    version: int


@dataclass(frozen=True, slots=True)
class StoredAll:
    """Sync mode, several aggregates: every event stored, in the request's order, in one
    transaction (``published``: on events.stored; ``duplicate``: a retry found them stored)."""

    items: tuple[StoredItem, ...]
    published: bool = True
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class UnknownAll:
    """An append across aggregates whose commit went unanswered: all of its events may be
    stored, or none (never some). Retrying with the command id is safe."""

    event_ids: tuple[str, ...]
    command_id: str | None
    message: str
    service: str = "store"


MultiOutcome = StoredAll | Refused | UnknownAll | NotDone
"""What an append across aggregates is answered: stored all, nothing written (refused, not
done), or not known (all of it or none may be stored)."""


_REFUSED_LABELS = {
    "transition_rejected": "rejected_transition",
    "command_in_progress": "rejected_in_progress",
}


def label(outcome: Outcome) -> str:
    """The outcome's ``eventfleet_requests_total`` label."""
    if isinstance(outcome, Accepted | Stored):
        return "duplicate" if outcome.duplicate else "accepted"
    if isinstance(outcome, Refused):
        if outcome.at_store:
            return "rejected_at_store"
        return _REFUSED_LABELS.get(outcome.code, f"rejected_{outcome.code}")
    if isinstance(outcome, Unknown):
        return f"unknown_{outcome.service}"
    return f"error_{outcome.service}"


def encode(outcome: Accepted | Stored | Refused) -> bytes:
    """The command memory's record of a command's outcome."""
    if isinstance(outcome, Accepted):
        body: JsonObject = {
            "o": "accepted",
            "event_id": outcome.event_id,
            "partition": outcome.partition,
            "offset": outcome.offset,
        }
    elif isinstance(outcome, Stored):
        body = {
            "o": "stored",
            "event_id": outcome.event_id,
            "version": outcome.version,
            "published": outcome.published,
        }
    else:
        body = {
            "o": "refused",
            "code": outcome.code,
            "message": outcome.message,
            "details": dict(outcome.details),
            "at_store": outcome.at_store,
        }
    return orjson.dumps(body)


def decode(raw: bytes) -> Accepted | Stored | Refused:
    """A recorded outcome (InvalidInput for bytes that are none: an older fleet's record)."""
    try:
        obj = orjson.loads(raw)
        kind = obj["o"]
        if kind == "accepted":
            return Accepted(obj["event_id"], obj.get("partition"), obj.get("offset"))
        if kind == "stored":
            return Stored(obj["event_id"], int(obj["version"]), bool(obj.get("published", True)))
        if kind == "refused":
            return Refused(
                obj["code"],
                obj["message"],
                obj.get("details") or {},
                at_store=bool(obj.get("at_store")),
            )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    raise InvalidInput(f"the command memory holds a record this fleet cannot read: {raw[:80]!r}")


DEAD_LETTERED = "dead_lettered"
"""The code a recorded refusal whose reason is no store verdict (a dead-lettered copy's fate,
``workers.roles.append.fates``) is answered with, that reason beside it."""


def refusal_at_store(rejection: Rejection) -> Refused:
    """The store refused an accepted event, or the appender dead-lettered it: what a retry of
    its command, and the outcome query, are told."""
    details: JsonObject = {"event_id": rejection.event_id}
    if rejection.command_id is not None:
        details["command_id"] = rejection.command_id
    if rejection.current_version is not None:
        details["current_version"] = rejection.current_version
    if rejection.reason in STORE_VERDICTS:
        return Refused(rejection.reason, rejection.message, details, at_store=True)
    details["reason"] = rejection.reason
    return Refused(DEAD_LETTERED, rejection.message, details, at_store=True)


def _rejected(reason: str, message: str) -> JsonObject:
    """The outcome query's body for a refused or dead-lettered event."""
    body = {"outcome": "rejected", "reason": reason, "message": message}
    return body if reason in STORE_VERDICTS else {**body, "dead_lettered": True}


NOT_STORED = "not_stored"

UNKNOWN_MESSAGE = (
    "sent without an answer; it may still be stored. Retrying with the same command_id is "
    "safe; without one, ask again later instead of sending it again."
)
NOT_STORED_MESSAGE = (
    "sent without an answer, and the events topic shows that no copy of it landed and none "
    "can any more: nothing was stored; it is safe to send it again."
)


def encode_not_stored(event_id: str) -> bytes:
    """What the memory keeps, by event id, for an event the log showed absent."""
    return orjson.dumps({"o": NOT_STORED, "event_id": event_id})


def not_stored_of(raw: bytes) -> bool:
    """Whether a recorded outcome is ``not_stored`` (no other outcome starts like it)."""
    return raw.startswith(b'{"o":"not_stored"')


class Resolver(Protocol):
    """What the log says of an event recorded unknown (``workers.roles.command.resolver``)."""

    async def resolve(
        self, aggregate_type: str, aggregate_id: str, record: CommandRecord
    ) -> JsonObject: ...


class Outcomes:
    """``GET .../outcome``: what became of a command or an event, from the store and the memory.

    ``none`` only when nothing of it is known anywhere: an event sent without an answer is
    ``unknown`` until the events topic shows its fate (``resolver``: ``accepted`` or
    ``not_stored``), or for as long as the command memory keeps it (the command TTL), so a
    client never retries a command that may still be stored under another command id.
    """

    def __init__(
        self,
        *,
        domains: Domains,
        store: EventStore,
        rejections: Rejections,
        memory: CommandMemory | None,
        resolver: Resolver | None = None,
    ) -> None:
        self._domains = domains
        self._store = store
        self._rejections = rejections
        self._memory = memory
        self._resolver = resolver

    async def ask(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        command_id: str | None = None,
        event_id: str | None = None,
        actor: Actor | None = None,
    ) -> JsonObject | None:
        """``{"outcome": stored | rejected | accepted | in_progress | unknown, ...}``, or None
        when nothing is known of it.

        A command id is ``actor``'s own (``command_scope``): another principal's command of
        the same id is answered None, exactly as a command never sent.
        """
        domain = self._domains.get(aggregate_type)
        if (command_id is None) == (event_id is None):
            raise InvalidInput("give exactly one of the query parameters command_id or event_id.")
        scoped = None if command_id is None else command_scope(command_id, actor)
        if scoped is not None:
            event_id = derived_event_id(domain.name, aggregate_id, scoped)
        assert event_id is not None
        body: JsonObject = {"event_id": event_id, "command_id": command_id}
        found = (await self._store.find([event_id], aggregates=[(domain.name, aggregate_id)])).get(
            event_id
        )
        if found is not None and (found.aggregate_type, found.aggregate_id) == (
            domain.name,
            aggregate_id,
        ):
            return {**body, "outcome": "stored", "version": found.version}
        refused = (await self._rejections.find([event_id])).get(event_id)
        if refused is not None and refused.aggregate_id == aggregate_id:
            return {**body, **_rejected(refused.reason, refused.message)}
        if self._memory is None:
            return None
        key = aggregate_key(domain.name, aggregate_id).decode()
        record = await self._memory.recall(key, scoped) if scoped else None
        if record is None or record.state == "unknown":
            # By event id: its age, and what the log resolved it to (the command's record
            # is gone once it was not stored, so that a retry sends it again).
            record = await self._memory.recall_event(key, event_id) or record
        if record is None and scoped is not None:  # refused at the door, nothing written
            refusal = await self._memory.recall_refusal(key, scoped)
            record = None if refusal is None else CommandRecord("answered", answer=refusal)
        if (
            record is not None
            and record.state == "unknown"
            and self._resolver is not None
            and domain.mode is Mode.ASYNC  # a sync write's witness is the store, not the log
        ):
            return {**body, **await self._resolver.resolve(domain.name, aggregate_id, record)}
        return None if record is None else {**body, **_remembered(record)}


def _remembered(record: CommandRecord) -> JsonObject:
    if record.state == "pending":
        return {"outcome": "in_progress"}
    if record.state == "unknown":
        return {"outcome": "unknown", "message": UNKNOWN_MESSAGE}
    if not_stored_of(record.answer):
        return {"outcome": NOT_STORED, "message": NOT_STORED_MESSAGE}
    outcome = decode(record.answer)
    if isinstance(outcome, Accepted | Stored):
        return {"outcome": "accepted"}
    if outcome.code == DEAD_LETTERED:
        return _rejected(str(outcome.details.get("reason", DEAD_LETTERED)), outcome.message)
    return {"outcome": "rejected", "reason": outcome.code, "message": outcome.message}
