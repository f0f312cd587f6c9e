"""The event envelope: an immutable value with a strict orjson codec."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, NoReturn

import orjson

from topics.errors import InvalidEnvelope, ValueOutOfRange
from topics.frozen import slot_init
from topics.jsonvalue import Json, JsonObject

# \Z, not $: "$" also matches before a trailing newline, so "o-1\n" would pass.
AGGREGATE_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
AGGREGATE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}\Z")
EVENT_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}\Z")
MAX_DATA_DEPTH = 32
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""What no id from outside may hold: C0 (CR, LF, tab, escape …), DEL, C1 (NEL U+0085 …) and the
Unicode line and paragraph separators: each breaks a log line, a header or a terminal."""

_METADATA_FIELDS = ("client_id", "command_id", "correlation_id", "causation_id")
_EVENT_FIELDS = frozenset(
    ("id", "aggregate_type", "aggregate_id", "type", "version", "data", "metadata", "occurred_at")
)
_OPTIONAL_FIELDS = frozenset(("after", "schema_version", "expected_version"))
_ALL_FIELDS = _EVENT_FIELDS | _OPTIONAL_FIELDS
_METADATA_KEYS = frozenset((*_METADATA_FIELDS, "actor", "trace_id"))
TRACE_ID_RE = re.compile(r"[0-9a-f]{32}\Z")
MAX_SCHEMA_VERSION = 10_000
MAX_VERSION = 2**63 - 1
"""The highest version a store can number (a signed 64-bit integer, as MongoDB keeps it)."""
READ_VERSION_MAX = 2**62
"""The highest version a read names (``after_version``, ``min_version``, ``Last-Event-ID`` …):
far beyond any stored one, and one past it still fits in a signed 64-bit integer."""

NEW_AGGREGATE = "-"
"""``Event.after`` of an event validated as the first of its aggregate."""
_COMMAND_IDS = uuid.UUID("6f0c3c52-5c1e-4a8a-9d0e-2f2d8b9c1a10")
"""Namespace of event ids derived from command ids (name-based UUIDs, RFC 4122 version 5)."""


MAX_ACTOR_ROLES = 64


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated principal who asked for an event, with the roles its token carried.

    Set only from a verified token or a trusted proxy's headers, never from a request body.
    """

    principal: str
    roles: tuple[str, ...] = ()

    def has(self, *roles: str) -> bool:
        """Whether the actor holds any of ``roles``."""
        return any(role in self.roles for role in roles)

    def as_dict(self) -> JsonObject:
        return {"principal": self.principal, "roles": list(self.roles)}


@slot_init
@dataclass(frozen=True, slots=True)
class Metadata:
    """Who asked for the event and which conversation it belongs to."""

    client_id: str | None = None
    command_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    actor: Actor | None = None
    """Who asked, authenticated (absent when the fleet runs with EVENTFLEET_AUTH=none)."""
    trace_id: str | None = None
    """The W3C trace id (32 hex digits) of the request that asked for the event, when the
    fleet traces (absent otherwise: envelopes look as they did before tracing)."""

    def as_dict(self) -> JsonObject:
        fields: JsonObject = {  # the order of _METADATA_FIELDS, written out: per event
            "client_id": self.client_id,
            "command_id": self.command_id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }
        if self.actor is not None:  # absent, envelopes look as they did before actors
            fields["actor"] = self.actor.as_dict()
        if self.trace_id is not None:
            fields["trace_id"] = self.trace_id
        return fields


@slot_init
@dataclass(frozen=True, slots=True)
class Event:
    """One change of one aggregate; ``version`` is None until the store numbers it."""

    id: str
    aggregate_type: str
    aggregate_id: str
    type: str
    data: Mapping[str, Json]
    version: int | None = None
    metadata: Metadata = field(default_factory=Metadata)
    occurred_at: datetime = field(default_factory=lambda: utc_now())
    after: str | None = None
    """The id of the event this one was validated after (``NEW_AGGREGATE``: validated as the
    first), or None when no validator vouched for it. The appender uses it to store events in
    the order they were validated."""
    schema_version: int = 1
    """The version of its type's data schema the event was written with (see
    ``snapshot_rules.upcasting``). Encoded only when above 1, so envelopes of types that never
    changed look as they always did."""
    expected_version: int | None = None
    """The version the sender expected the aggregate at before this event (0: it must not exist
    yet), or None: no expectation. The store refuses the event unless it is stored as version
    ``expected_version + 1`` (``wrong_expected_version``). Encoded only when set."""

    @property
    def key(self) -> bytes:
        """The Kafka key: all events of one aggregate share a partition and an order."""
        return aggregate_key(self.aggregate_type, self.aggregate_id)

    def with_version(self, version: int) -> Event:
        # Positionally, in field order: dataclasses.replace costs twice as much, per event.
        return Event(
            self.id,
            self.aggregate_type,
            self.aggregate_id,
            self.type,
            self.data,
            version,
            self.metadata,
            self.occurred_at,
            self.after,
            self.schema_version,
            self.expected_version,
        )

    def as_dict(self) -> JsonObject:
        fields = {
            "id": self.id,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "type": self.type,
            "version": self.version,
            "data": self.data,
            "metadata": self.metadata.as_dict(),
            "occurred_at": self.occurred_at,
            "after": self.after,
        }
        if self.schema_version != 1:
            fields["schema_version"] = self.schema_version
        if self.expected_version is not None:
            fields["expected_version"] = self.expected_version
        return fields


def derived_event_id(aggregate_type: str, aggregate_id: str, command_id: str) -> str:
    """The event id of a command: the same for every retry, so the store keeps one copy.

    ``command_id`` is the command's scoped name (``command_scope``): two principals sending
    the same command id send two commands, with two event ids. The RFC 4122 version 5 UUID of
    the name, written out without ``uuid.UUID`` (a quarter of the cost; equal ids, tested)."""
    name = f"{aggregate_type}\x00{aggregate_id}\x00{command_id}".encode()
    h = hashlib.sha1(_COMMAND_IDS_BYTES + name).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def new_event_id() -> str:
    """A fresh event id: an RFC 9562 version 7 UUID, the millisecond first, then 74 random bits.

    As unguessable as ``uuid4`` (the random bits come from ``os.urandom``, read 4 KiB at a
    time, and a forked child never reuses its parent's), unique with the same odds, and about a
    third of its cost; time-ordered, so the store's ``_id`` index grows at its end."""
    global _random, _taken
    if _taken + 10 > len(_random):
        _random, _taken = os.urandom(_RANDOM_BYTES), 0
    r = _random[_taken : _taken + 10].hex()
    _taken += 10
    t = f"{time.time_ns() // 1_000_000:012x}"
    return f"{t[:8]}-{t[8:]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[8:20]}"


_COMMAND_IDS_BYTES = _COMMAND_IDS.bytes
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""The first digit of a UUID's fourth group: its top two bits are the RFC 4122 variant (10)."""
_RANDOM_BYTES = 4096
_random, _taken = b"", 0


def _forget_random() -> None:
    global _random, _taken
    _random, _taken = b"", 0


os.register_at_fork(after_in_child=_forget_random)  # a child never repeats its parent's ids


DESK_COMMANDS = "dlq-replay:"
"""The prefix of the dead-letter desk's command ids (one per dead letter): the fleet's own
commands, refused from every client (``parse_request``) and scoped to no principal, so a
second operator replaying the same fix is answered as the first one's duplicate."""


def command_scope(command_id: str, actor: Actor | None) -> str:
    """The name a command id is remembered and its event id derived under: its sender's own.

    A command id belongs to the principal that sent it: another principal's equal id names
    another command (no answer, event id or version of the first ever reaches it). Without an
    actor (``EVENTFLEET_AUTH=none``: one anonymous principal; the ``commands`` topic) the id
    is its own scope, as before scoping. The principal enters as a hash: no user name in a
    Redis key, and a fixed width, so no principal and id pair reads as another.
    """
    if actor is None or command_id.startswith(DESK_COMMANDS):
        return command_id
    digest = hashlib.blake2b(actor.principal.encode(), digest_size=8).hexdigest()
    return f"\x1f{digest}\x1f{command_id}"


def new_event(
    aggregate_type: str,
    aggregate_id: str,
    type: str,
    data: Mapping[str, Json],
    *,
    metadata: Metadata | None = None,
    version: int | None = None,
    occurred_at: datetime | None = None,
    id: str | None = None,
    after: str | None = None,
    schema_version: int = 1,
    expected_version: int | None = None,
) -> Event:
    """Build a validated event (a fresh id unless given); raises InvalidEnvelope naming the
    field."""
    event = Event(
        id=id or new_event_id(),
        after=after,
        schema_version=schema_version,
        expected_version=expected_version,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        type=type,
        data=data,
        version=version,
        metadata=metadata or Metadata(),
        occurred_at=occurred_at or utc_now(),
    )
    return from_dict(event.as_dict())


def utc_now() -> datetime:
    """Now, in UTC, at the millisecond precision MongoDB stores (so round trips are exact).

    Built from whole seconds and a prebuilt millisecond step: ``datetime.replace`` with a
    keyword, the obvious way to drop the microseconds, cost twice as much (every command and
    every stored event takes a time)."""
    return at_millisecond(time.time_ns() // 1_000_000)


def utc_text(moment: datetime) -> str:
    """``moment`` in RFC 3339 as every answer and record writes times: UTC, ``Z``, and always
    six digits of fraction (``2026-11-29T02:34:57.000000Z``), so times sort as text too.

    ``datetime.isoformat`` and orjson leave the fraction out on a whole second, and
    ``...:57Z`` sorts as text after ``...:57.006Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def at_millisecond(ms: int) -> datetime:
    """The UTC time ``ms`` milliseconds after the Unix epoch, exactly (no float in between)."""
    seconds, within = divmod(ms, 1000)
    return _from_seconds(seconds, UTC) + _MILLISECONDS[within]


_from_seconds = datetime.fromtimestamp
_MILLISECONDS = tuple(timedelta(milliseconds=ms) for ms in range(1000))


class StorePosition(NamedTuple):
    """Where a stored event stands: its aggregate, then its version (a sort key)."""

    aggregate_type: str
    aggregate_id: str
    version: int


def store_position(event: Event) -> StorePosition:
    """The event's ``StorePosition`` (an unversioned event at version 0)."""
    return StorePosition(event.aggregate_type, event.aggregate_id, event.version or 0)


def aggregate_key(aggregate_type: str, aggregate_id: str) -> bytes:
    return f"{aggregate_type}:{aggregate_id}".encode()


def kafka_headers(event: Event) -> list[tuple[str, bytes]]:
    """Correlation ids travel as Kafka headers too, so tools can trace without decoding."""
    headers = [("event_id", event.id.encode()), ("event_type", event.type.encode())]
    metadata = event.metadata
    if metadata is _NO_METADATA:
        return headers
    for name in _METADATA_FIELDS:
        value = getattr(metadata, name)
        if value is not None:
            headers.append((name, value.encode()))
    if metadata.command_id is not None and metadata.actor is not None:
        # The name its event id derives from: a record nobody can decode still names its command.
        scope = command_scope(metadata.command_id, metadata.actor)
        headers.append(("command_scope", scope.encode()))
    return headers


def encode(event: Event) -> bytes:
    """The event as JSON, its ``occurred_at`` as ``utc_text`` writes it (same bytes either way:
    orjson writes six digits of fraction too, and leaves them out only on a whole second)."""
    fields = event.as_dict()
    if not event.occurred_at.microsecond:
        fields["occurred_at"] = utc_text(event.occurred_at)
    return orjson.dumps(fields, option=orjson.OPT_UTC_Z)


def loads(raw: bytes | str) -> Json:
    """Parse JSON with orjson, except that integers beyond 64 bits stay exact integers.

    orjson turns them into floats (18446744073709551617 becomes 1.8446744073709552e+19), so
    the range check would never see them. Such a literal has at least 19 digits in a row:
    the rare document with one is parsed again, exactly, by the standard library. Raises
    ValueError (orjson.JSONDecodeError).
    """
    obj = orjson.loads(raw)
    text = raw if isinstance(raw, bytes) else raw.encode()
    if _LONG_DIGITS.search(text) is not None:
        obj = _loads_exactly(raw)
    return obj


def _loads_exactly(raw: bytes | str) -> Json:
    """Parse with the standard library: integers of any size stay exact integers."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError as e:
        raise orjson.JSONDecodeError("nested too deeply", "", 0) from e


_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_BEYOND_64_BITS = float(2**63)
"""orjson parses an integer literal beyond 64 bits as a float at least this large."""


class _Inexact(Exception):
    """A float orjson made of a literal beyond 64 bits, which may have been an integer: the
    document is parsed again exactly (``decode``)."""


def _no_constant(name: str) -> NoReturn:
    raise orjson.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def decode(raw: bytes | str) -> Event:
    """Strictly decode one envelope; every problem names the field it is in.

    Parsed once by orjson; a document where orjson met a number beyond 64 bits (it makes a
    float of it) is parsed again exactly, so an integer literal there is refused as one.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidEnvelope("envelope", f"not valid JSON ({e})") from e
    try:
        return _from_dict(obj, exact=False)
    except _Inexact:
        try:
            obj = _loads_exactly(raw)
        except orjson.JSONDecodeError as e:
            raise InvalidEnvelope("envelope", f"not valid JSON ({e})") from e
        return from_dict(obj)


def from_dict(obj: Json) -> Event:
    """An envelope from its JSON form (every number exact), strictly."""
    return _from_dict(obj, exact=True)


def _from_dict(obj: Json, *, exact: bool) -> Event:
    if not isinstance(obj, dict):
        raise InvalidEnvelope("envelope", f"expected a JSON object, got {_kind(obj)}")
    keys = obj.keys()
    if not _EVENT_FIELDS <= keys <= _ALL_FIELDS:
        missing = _EVENT_FIELDS - keys
        if missing:
            raise InvalidEnvelope(sorted(missing)[0], "required field is missing")
        raise InvalidEnvelope(sorted(keys - _ALL_FIELDS)[0], "unknown field")
    return Event(
        id=_uuid(obj["id"]),
        aggregate_type=_name(obj["aggregate_type"], "aggregate_type", AGGREGATE_TYPE_RE),
        aggregate_id=_matching(obj["aggregate_id"], "aggregate_id", AGGREGATE_ID_RE),
        type=_name(obj["type"], "type", EVENT_TYPE_RE),
        version=_version(_exact(obj["version"], exact)),
        data=_validate_data(obj["data"], "data", exact=exact),
        metadata=metadata_of(obj["metadata"]),
        occurred_at=parse_utc(obj["occurred_at"], "occurred_at"),
        after=_after(obj.get("after")),
        schema_version=_schema_version(_exact(obj.get("schema_version", 1), exact)),
        expected_version=expected_version_of(_exact(obj.get("expected_version"), exact)),
    )


def _exact(value: Json, exact: bool) -> Json:
    """``value``, unless it is a float orjson may have made of an integer beyond 64 bits."""
    if not exact and type(value) is float and not -_BEYOND_64_BITS < value < _BEYOND_64_BITS:
        raise _Inexact
    return value


def validate_data(value: Json, path: str) -> JsonObject:
    """Check that ``value`` is a JSON object whose keys are safe to reach MongoDB queries."""
    return _validate_data(value, path, exact=True)


def _validate_data(value: Json, path: str, *, exact: bool) -> JsonObject:
    if not isinstance(value, dict):
        _exact(value, exact)  # beyond 64 bits: parsed again, named an int, not orjson's float
        raise InvalidEnvelope(path, f"expected a JSON object, got {_kind(value)}")
    if not _safe_json(value, 0, exact):
        _check_json(value, path, 0)  # names the first problem (or finds none: a dict subclass)
    return value


def _safe_json(value: Json, depth: int, exact: bool) -> bool:
    """Whether ``_check_json`` would pass ``value``, without naming paths: the common case.
    False also for values it does not know (subclasses): ``_check_json`` judges those."""
    if depth > MAX_DATA_DEPTH:
        return False
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -(2**63) <= value < 2**63  # type: ignore[no-any-return]  # an int here: the compare is a bool, without a bool() call per value
    if kind is float:
        _exact(value, exact)
        return value == value and value not in (_INF, -_INF)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key or key[0] == "$" or "." in key or "\x00" in key:
                return False
            if not _safe_json(item, depth + 1, exact):
                return False
        return True
    if kind is list:
        for item in value:
            if not _safe_json(item, depth + 1, exact):
                return False
        return True
    return False


_INF = float("inf")


def _check_json(value: object, path: str, depth: int) -> None:
    if depth > MAX_DATA_DEPTH:
        raise InvalidEnvelope(path, f"nested deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEnvelope(path, f"key {key!r} is not a string")
            if not key or key.startswith("$") or "." in key or "\x00" in key:
                raise InvalidEnvelope(
                    f"{path}.{key}",
                    "field names may not be empty, start with '$' or contain '.' or NUL",
                )
            _check_json(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidEnvelope(path, "NaN and infinity are not JSON numbers")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:
            raise ValueOutOfRange(
                path, f"{value} does not fit in 64 bits (a signed 64-bit integer)"
            )
    elif value is not None and not isinstance(value, str | bool):
        raise InvalidEnvelope(path, f"{_kind(value)} is not a JSON value")


def parse_utc(value: object, field_name: str) -> datetime:
    """Parse an ISO-8601 time that must carry a UTC offset (``Z`` or ``+00:00``)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as e:
            raise InvalidEnvelope(field_name, f"{value!r} is not an ISO-8601 time") from e
        if moment.tzinfo is UTC:  # "Z" and "+00:00" alike: nothing to convert
            return moment
    else:
        raise InvalidEnvelope(field_name, f"expected an ISO-8601 string, got {_kind(value)}")
    if moment.tzinfo is None:
        raise InvalidEnvelope(field_name, f"{value!r} has no UTC offset; append 'Z'")
    if moment.utcoffset() != _ZERO:
        raise InvalidEnvelope(field_name, f"{value!r} is not UTC; convert it and append 'Z'")
    return moment.astimezone(UTC)


_ZERO = timedelta(0)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _uuid(value: object, field_name: str = "id") -> str:
    if not isinstance(value, str):
        raise InvalidEnvelope(field_name, f"expected a UUID string, got {_kind(value)}")
    if _CANONICAL_UUID.match(value):
        return value  # the form every writer produces: no need to parse and print it again
    try:
        return str(uuid.UUID(value))
    except ValueError as e:
        raise InvalidEnvelope(field_name, f"{value!r} is not a UUID") from e


def _matching(value: object, field_name: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str):
        raise InvalidEnvelope(field_name, f"expected a string, got {_kind(value)}")
    if not pattern.match(value):
        raise InvalidEnvelope(field_name, f"{value!r} does not match {pattern.pattern}")
    return value


_NAMES_KEPT = 4096
_valid_names: set[tuple[str, str]] = set()
"""(field, value) of aggregate and event types found valid: few, and met again and again."""


def _name(value: object, field_name: str, pattern: re.Pattern[str]) -> str:
    """``_matching`` for a type name, remembered once valid (up to ``_NAMES_KEPT`` of them)."""
    if type(value) is str and (field_name, value) in _valid_names:
        return value
    checked = _matching(value, field_name, pattern)
    if len(_valid_names) < _NAMES_KEPT:
        _valid_names.add((field_name, checked))
    return checked


def _after(value: object) -> str | None:
    if value is None:
        return None
    if value == NEW_AGGREGATE:
        return NEW_AGGREGATE
    return _uuid(value, "after")


def _schema_version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEnvelope("schema_version", f"expected an integer, got {_kind(value)}")
    if not 1 <= value <= MAX_SCHEMA_VERSION:
        raise InvalidEnvelope(
            "schema_version", f"schema versions run from 1 to {MAX_SCHEMA_VERSION}, got {value}"
        )
    return value


def expected_version_of(value: object, field_name: str = "expected_version") -> int | None:
    """An expected version, strictly: None, or a whole number from 0 (the aggregate must not
    exist yet) to ``MAX_VERSION``; raises InvalidEnvelope naming the value and the fix. A
    boolean, a float (even ``7.0``) or a numeric string is refused, never converted."""
    if value is None:
        return None
    if type(value) is int:
        if 0 <= value <= MAX_VERSION:
            return value
        if value < 0:
            raise InvalidEnvelope(
                field_name,
                f"versions are 0 or more (0: the aggregate must not exist yet), got {value}",
            )
        raise InvalidEnvelope(field_name, f"{value} does not fit in 64 bits; at most 2**63-1")
    shown = repr(value[:40] + "…" if len(value) > 40 else value) if type(value) is str else ""
    got = {
        bool: f"a boolean ({str(value).lower()})",
        str: f"a string ({shown}); send the number without quotes",
        float: f"{value!r}, written with a fraction or an exponent; send a whole number",
    }.get(type(value), _kind(value))
    raise InvalidEnvelope(
        field_name, f"expected null or a whole number from 0 to 2**63-1, got {got}"
    )


def _version(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEnvelope("version", f"expected null or an integer, got {_kind(value)}")
    if value < 1:
        raise InvalidEnvelope("version", f"versions start at 1, got {value}")
    return value


def metadata_of(value: object) -> Metadata:
    """Metadata from its JSON form, strictly; raises InvalidEnvelope naming the field."""
    if not isinstance(value, dict):
        raise InvalidEnvelope("metadata", f"expected a JSON object, got {_kind(value)}")
    if all(item is None for item in value.values()) and value.keys() <= _METADATA_KEYS:
        return _NO_METADATA  # the common case (no correlation, no actor): one shared value
    unknown = value.keys() - _METADATA_KEYS
    if unknown:
        raise InvalidEnvelope(f"metadata.{sorted(unknown)[0]}", "unknown field")
    fields: dict[str, str | None] = {}
    for name in _METADATA_FIELDS:
        item = value.get(name)
        if item is not None and not _short_text(item):
            raise InvalidEnvelope(f"metadata.{name}", "expected null or a string of 1-256 chars")
        fields[name] = item
    trace_id = value.get("trace_id")
    if trace_id is not None and not (isinstance(trace_id, str) and TRACE_ID_RE.match(trace_id)):
        raise InvalidEnvelope("metadata.trace_id", "expected null or 32 lowercase hex digits")
    return Metadata(**fields, actor=_actor(value.get("actor")), trace_id=trace_id)


_NO_METADATA = Metadata()


def control_character(text: str) -> str | None:
    """Where ``text`` holds its first control character or line separator, as a phrase naming it
    and its position (``'\\n' at position 3``); None when it holds none."""
    found = CONTROL_CHARACTERS.search(text)
    if found is None:
        return None
    return f"{found.group()!r} at position {found.start()}"


def _short_text(item: object) -> bool:
    return isinstance(item, str) and 0 < len(item) <= 256


def _actor(value: object) -> Actor | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.keys() != {"principal", "roles"}:
        raise InvalidEnvelope("metadata.actor", "expected null or {principal, roles}")
    roles = value["roles"]
    if not _short_text(value["principal"]):
        raise InvalidEnvelope("metadata.actor.principal", "expected a string of 1-256 chars")
    if not isinstance(roles, list) or len(roles) > MAX_ACTOR_ROLES:
        raise InvalidEnvelope("metadata.actor.roles", f"expected at most {MAX_ACTOR_ROLES} roles")
    if not all(_short_text(role) for role in roles):
        raise InvalidEnvelope("metadata.actor.roles", "expected strings of 1-256 chars")
    return Actor(value["principal"], tuple(roles))


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
