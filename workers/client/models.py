"""What the fleet answers, as frozen values: an append, a state, events and their pages, an
outcome, an erasure. JSON is kept as parsed (``Json``), never coerced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "Appended",
    "Erased",
    "Event",
    "EventPage",
    "Json",
    "JsonObject",
    "Outcome",
    "State",
]

Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"
JsonObject: TypeAlias = "dict[str, Json]"


def _int(body: Mapping[str, Json], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"the fleet's answer has no integer {name!r}: {dict(body)!r}")
    return value


def _str(body: Mapping[str, Json], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ValueError(f"the fleet's answer has no string {name!r}: {dict(body)!r}")
    return value


def _optional_int(body: Mapping[str, Json], name: str) -> int | None:
    value = body.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _optional_str(body: Mapping[str, Json], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


def _object(body: Mapping[str, Json], name: str) -> JsonObject:
    value = body.get(name)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Appended:
    """An accepted append: ``202`` (async: Kafka has it, the store judges it next) or ``201``
    (sync: stored at ``version``). ``duplicate``: the command id was seen before, and this is
    what became of it (the same ``event_id``)."""

    event_id: str
    command_id: str
    stored: bool
    """True for a ``201`` (stored before the answer), False for a ``202`` (accepted)."""
    version: int | None = None
    partition: int | None = None
    offset: int | None = None
    duplicate: bool = False

    @classmethod
    def from_answer(cls, status: int, body: Mapping[str, Json], command_id: str) -> Appended:
        return cls(
            event_id=_str(body, "event_id"),
            command_id=command_id,
            stored=status == 201,
            version=_optional_int(body, "version"),
            partition=_optional_int(body, "partition"),
            offset=_optional_int(body, "offset"),
            duplicate=body.get("duplicate") is True,
        )


@dataclass(frozen=True, slots=True)
class State:
    """An aggregate's state replayed at ``version``."""

    version: int
    state: JsonObject

    @classmethod
    def from_answer(cls, body: Mapping[str, Json]) -> State:
        return cls(version=_int(body, "version"), state=_object(body, "state"))


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event, as ``GET .../events`` and the subscriptions give it."""

    id: str
    aggregate_type: str
    aggregate_id: str
    type: str
    version: int
    data: JsonObject
    metadata: JsonObject
    occurred_at: str
    """ISO-8601 in UTC, as the fleet wrote it."""
    schema_version: int = 1

    @classmethod
    def from_json(cls, body: Mapping[str, Json]) -> Event:
        return cls(
            id=_str(body, "id"),
            aggregate_type=_str(body, "aggregate_type"),
            aggregate_id=_str(body, "aggregate_id"),
            type=_str(body, "type"),
            version=_int(body, "version"),
            data=_object(body, "data"),
            metadata=_object(body, "metadata"),
            occurred_at=_str(body, "occurred_at"),
            schema_version=_optional_int(body, "schema_version") or 1,
        )

    @property
    def command_id(self) -> str | None:
        return _optional_str(self.metadata, "command_id")


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of an aggregate's events in version order; ``more``: events exist past it,
    from ``next_after_version``."""

    events: tuple[Event, ...]
    more: bool
    next_after_version: int

    @classmethod
    def from_answer(cls, body: Mapping[str, Json]) -> EventPage:
        raw = body.get("events")
        if not isinstance(raw, list):
            raise ValueError(f"the fleet's answer has no list 'events': {dict(body)!r}")
        events = tuple(Event.from_json(e) for e in raw if isinstance(e, dict))
        return cls(events, body.get("more") is True, _int(body, "next_after_version"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a command (or event): ``stored`` (``version``), ``rejected`` (``reason``,
    ``message``), ``accepted``, ``in_progress``, ``unknown`` (it may still be stored),
    ``not_stored`` (the events topic shows that no copy landed nor can: safe to send again), or
    ``none`` (nothing is known of it: never sent here, or forgotten after the command TTL)."""

    outcome: str
    event_id: str | None
    command_id: str | None
    version: int | None = None
    reason: str | None = None
    message: str | None = None
    dead_lettered: bool = False

    @classmethod
    def from_answer(cls, body: Mapping[str, Json]) -> Outcome:
        return cls(
            outcome=_str(body, "outcome"),
            event_id=_optional_str(body, "event_id"),
            command_id=_optional_str(body, "command_id"),
            version=_optional_int(body, "version"),
            reason=_optional_str(body, "reason"),
            message=_optional_str(body, "message"),
            dead_lettered=body.get("dead_lettered") is True,
        )


@dataclass(frozen=True, slots=True)
class Erased:
    """A subject crypto-shredded: its data key destroyed, recorded as erased by ``by``."""

    subject: str
    erased_at: str
    by: str | None
    keys_destroyed: int
    already_erased: bool
    unreadable_everywhere_within_s: float | None

    @classmethod
    def from_answer(cls, body: Mapping[str, Json]) -> Erased:
        within = body.get("unreadable_everywhere_within_s")
        return cls(
            subject=_str(body, "subject"),
            erased_at=str(body.get("erased_at")),
            by=_optional_str(body, "by"),
            keys_destroyed=_optional_int(body, "keys_destroyed") or 0,
            already_erased=body.get("already_erased") is True,
            unreadable_everywhere_within_s=(
                float(within) if isinstance(within, int | float) else None
            ),
        )
