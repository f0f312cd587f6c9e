"""Append requests, transport-neutral: strict parsing, errors that name the field and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from topics.envelope import (
    AGGREGATE_ID_RE,
    DESK_COMMANDS,
    Actor,
    aggregate_key,
    control_character,
    expected_version_of,
    loads,
    validate_data,
)
from topics.errors import InvalidEnvelope, InvalidEventData, InvalidInput, ValueOutOfRange
from topics.frozen import slot_init
from topics.jsonvalue import Json

_BODY_FIELDS = frozenset(
    (
        "type",
        "data",
        "client_id",
        "command_id",
        "correlation_id",
        "causation_id",
        "expected_version",
    )
)


class PayloadTooLarge(InvalidInput):
    """The request body is over the configured limit."""

    code = "payload_too_large"


@slot_init
@dataclass(frozen=True, slots=True)
class CommandRequest:
    """``append event <type> to aggregate <aggregate_type>/<aggregate_id>``."""

    aggregate_type: str
    aggregate_id: str
    type: str
    data: Mapping[str, Json]
    client_id: str | None = None
    command_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    actor: Actor | None = None
    """Who asks, authenticated at the door (None: an unauthenticated transport, e.g. the
    commands topic, or a fleet running with EVENTFLEET_AUTH=none)."""
    expected_version: int | None = None
    """Append only if the aggregate is at this version (0: only if it does not exist yet);
    None: at whatever version it is. A stale expectation is refused, nothing written
    (``wrong_expected_version``)."""

    @property
    def key(self) -> str:
        return aggregate_key(self.aggregate_type, self.aggregate_id).decode()


def json_object(body: bytes, *, max_bytes: int, like: str) -> dict[str, Json]:
    """The body as a JSON object: PayloadTooLarge over ``max_bytes``, InvalidInput for bytes
    that are no JSON or JSON that is no object (``like``: the object it should look like)."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(
            f"the body has {len(body)} bytes; the limit is {max_bytes} bytes "
            f"(EVENTFLEET_MAX_BODY_BYTES): send at most {max_bytes}."
        )
    try:
        obj = loads(body)
    except ValueError as e:
        raise InvalidInput(f"the body is not valid JSON: {e}.") from e
    if not isinstance(obj, dict):
        raise InvalidInput(f"the body must be a JSON object like {like}.")
    return obj


IDS = ("client_id", "command_id", "correlation_id", "causation_id")
"""A request's ids: who sends it, its command, its conversation and what caused it."""


ID_MAX = 256
"""The most characters of a request's ids (``command_id`` and the rest, from 1): what an append
takes, a read waits for (``command_id``) and ``/outcome`` asks about."""


def check_ids(obj: Mapping[str, object], *, desk: bool = False) -> None:
    """InvalidInput for an id of ``obj`` that is no printable string of 1 to ID_MAX characters,
    or a command id with the dead-letter desk's prefix from another sender than the desk."""
    for name in IDS:
        value = obj.get(name)
        if value is not None and not (isinstance(value, str) and 0 < len(value) <= ID_MAX):
            raise InvalidInput(f"field {name!r} must be a string of 1 to {ID_MAX} characters.")
        where = control_character(value) if value is not None else None
        if where is not None:  # a line break in an id would break every line that names it
            raise InvalidInput(
                f"field {name!r} holds a control character ({where}); an id is printable "
                "text: no line breaks, tabs or escape codes."
            )
    command_id = obj.get("command_id")
    if isinstance(command_id, str) and command_id.startswith(DESK_COMMANDS) and not desk:
        raise InvalidInput(
            f"command ids starting with {DESK_COMMANDS!r} are the dead-letter desk's own "
            "(its replays); choose another command id."
        )


def parse_request(
    aggregate_type: str,
    aggregate_id: str,
    body: bytes,
    *,
    max_bytes: int,
    desk: bool = False,
    actor: Actor | None = None,
) -> CommandRequest:
    """Decode a request body strictly; ``desk``: the dead-letter desk's own replay, the only
    sender whose command id may carry the desk's prefix (``DESK_COMMANDS``); ``actor``: who
    sends it, as the door authenticated it (never read from the body).

    Raises PayloadTooLarge (413), InvalidEventData (422: a number beyond 64 bits in the
    data) or InvalidInput (400) naming the field and the fix (an ``expected_version`` that is
    no whole number from 0 to 2**63-1 among them: a string, a boolean, a fraction, beyond 64
    bits).
    """
    obj = json_object(body, max_bytes=max_bytes, like='{"type": ..., "data": {...}}')
    unknown = sorted(obj.keys() - _BODY_FIELDS)
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(_BODY_FIELDS))}."
        )
    if not isinstance(obj.get("type"), str) or not obj["type"]:
        raise InvalidInput("field 'type' is required and must be a non-empty string.")
    check_ids(obj, desk=desk)
    try:
        expected_version = expected_version_of(obj.get("expected_version"))
    except InvalidEnvelope as e:
        raise InvalidInput(f"field {e}.") from e
    try:
        data = validate_data(obj.get("data", {}), "data")
    except ValueOutOfRange as e:
        raise InvalidEventData(f"field {e}; send numbers between -2**63 and 2**63-1.") from e
    except InvalidEnvelope as e:
        raise InvalidInput(f"field {e}.") from e
    if not AGGREGATE_ID_RE.match(aggregate_id):
        raise InvalidInput(f"aggregate id {aggregate_id!r} must match {AGGREGATE_ID_RE.pattern}.")
    return CommandRequest(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        type=obj["type"],
        data=data,
        client_id=obj.get("client_id"),
        command_id=obj.get("command_id"),
        correlation_id=obj.get("correlation_id"),
        causation_id=obj.get("causation_id"),
        actor=actor,
        expected_version=expected_version,
    )
