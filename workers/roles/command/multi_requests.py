"""Appends across aggregates, transport-neutral: one request naming an event for each of several
aggregates, parsed strictly, every error naming the item and the field.

``{"appends": [{"aggregate_type", "aggregate_id", "type", "data", "expected_version"}, ...],
"command_id", "client_id", "correlation_id", "causation_id"}``: the ids are the request's, shared
by every item (so one command id names the whole request); the items are what a single append's
path and body say, one aggregate each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from topics.envelope import (
    AGGREGATE_ID_RE,
    AGGREGATE_TYPE_RE,
    Actor,
    expected_version_of,
    validate_data,
)
from topics.errors import InvalidEnvelope, InvalidEventData, InvalidInput, ValueOutOfRange
from topics.jsonvalue import Json
from workers.roles.command.requests import IDS, CommandRequest, check_ids, json_object

APPENDS = "appends"
_BODY_FIELDS = frozenset((APPENDS, *IDS))
_ITEM_FIELDS = frozenset(("aggregate_type", "aggregate_id", "type", "data", "expected_version"))
_ITEM_LIKE = '{"aggregate_type": ..., "aggregate_id": ..., "type": ..., "data": {...}}'
_LIKE = '{"appends": [' + _ITEM_LIKE + "]}"


@dataclass(frozen=True, slots=True)
class MultiRequest:
    """Append one event to each of several aggregates, all or none: each item is the request
    a single append would be, with the request's ids and sender."""

    items: tuple[CommandRequest, ...]

    @property
    def command_id(self) -> str | None:
        return self.items[0].command_id

    @property
    def actor(self) -> Actor | None:
        return self.items[0].actor


def parse_multi(
    body: bytes, *, max_bytes: int, max_items: int, actor: Actor | None = None
) -> MultiRequest:
    """Decode an append across aggregates strictly; ``actor``: who sends it, as the door
    authenticated it (never read from the body).

    Raises PayloadTooLarge (413), InvalidEventData (422: a number beyond 64 bits in an item's
    data) or InvalidInput (400) naming the item and the field: ``appends`` missing, empty or
    over ``max_items``; an item that is no object, with an unknown or missing field, a type or
    id out of its form, an expected version that is no whole number from 0 to 2**63-1; two
    items of one aggregate.
    """
    obj = json_object(body, max_bytes=max_bytes, like=_LIKE)
    unknown = sorted(obj.keys() - _BODY_FIELDS)
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(_BODY_FIELDS))} (each "
            "item's type, data and expected version go inside its entry of appends)."
        )
    check_ids(obj)
    raw = obj.get(APPENDS)
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(
            f"field 'appends' is required: a list of at least one item, {_ITEM_LIKE}."
        )
    if len(raw) > max_items:
        raise InvalidInput(
            f"field 'appends' has {len(raw)} items; at most {max_items} are stored in one "
            f"transaction (EVENTFLEET_MULTI_APPEND_MAX_ITEMS): split the request, or send "
            "the events that need not be stored together on their own."
        )
    ids = {name: obj.get(name) for name in IDS}
    items = tuple(_item(index, entry, ids, actor) for index, entry in enumerate(raw))
    _one_each(items)
    return MultiRequest(items)


def _item(index: int, entry: Json, ids: Mapping[str, Json], actor: Actor | None) -> CommandRequest:
    where = f"appends[{index}]"
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where} must be an object like {_ITEM_LIKE}.")
    unknown = sorted(entry.keys() - _ITEM_FIELDS)
    if unknown:
        raise InvalidInput(
            f"{where} has an unknown field {unknown[0]!r}; allowed: "
            f"{', '.join(sorted(_ITEM_FIELDS))} (the ids are the request's, beside appends)."
        )
    aggregate_type, aggregate_id, kind = (
        entry.get("aggregate_type"),
        entry.get("aggregate_id"),
        entry.get("type"),
    )
    if not isinstance(aggregate_type, str) or not AGGREGATE_TYPE_RE.match(aggregate_type):
        raise InvalidInput(
            f"{where}.aggregate_type {_shown(aggregate_type)} must be an aggregate type "
            f"matching {AGGREGATE_TYPE_RE.pattern}."
        )
    if not isinstance(aggregate_id, str) or not AGGREGATE_ID_RE.match(aggregate_id):
        raise InvalidInput(
            f"{where}.aggregate_id {_shown(aggregate_id)} must be an aggregate id matching "
            f"{AGGREGATE_ID_RE.pattern}."
        )
    if not isinstance(kind, str) or not kind:
        raise InvalidInput(f"{where}.type is required and must be a non-empty string.")
    try:
        expected_version = expected_version_of(entry.get("expected_version"))
        data = validate_data(entry.get("data", {}), "data")
    except ValueOutOfRange as e:
        raise InvalidEventData(f"{where}.{e}; send numbers between -2**63 and 2**63-1.") from e
    except InvalidEnvelope as e:
        raise InvalidInput(f"{where}.{e}.") from e
    return CommandRequest(
        aggregate_type,
        aggregate_id,
        kind,
        data,
        client_id=_text(ids, "client_id"),
        command_id=_text(ids, "command_id"),
        correlation_id=_text(ids, "correlation_id"),
        causation_id=_text(ids, "causation_id"),
        actor=actor,
        expected_version=expected_version,
    )


def _one_each(items: tuple[CommandRequest, ...]) -> None:
    """InvalidInput for a second item of an aggregate: the items' expected versions and the
    event ids their command id gives them are each aggregate's own."""
    first: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        ref = (item.aggregate_type, item.aggregate_id)
        if ref in first:
            raise InvalidInput(
                f"appends[{index}] names {ref[0]} {ref[1]}, as appends[{first[ref]}] does: "
                "one item per aggregate (each item's expected version and event id are its "
                "aggregate's). Send that aggregate's other event in a request of its own."
            )
        first[ref] = index


def _text(ids: Mapping[str, Json], name: str) -> str | None:
    value = ids.get(name)
    return value if isinstance(value, str) else None


def _shown(value: Json) -> str:
    if isinstance(value, str):
        return repr(value[:40] + "…" if len(value) > 40 else value)
    return "(missing)" if value is None else f"({type(value).__name__})"
