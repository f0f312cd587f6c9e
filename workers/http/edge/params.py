"""Query parameters bound to a typed declaration: a msgspec ``Struct`` per route.

A route declares its query as a Struct (field name = parameter name, type, default, bounds in
``Annotated[int, Meta(ge=..., le=...)]``); ``bind_query`` turns the request's query into it. The
messages are ours, the same for every route: ``query parameter limit='x' must be a whole
number.``, ``query parameter wait_ms=30001 must be between 0 and 30000.``. A parameter given
empty is given (and refused where empty is not a value: ``limit=``); one the route does not
declare is ignored; one given twice is refused before any route runs
(``workers.http.edge.app``). The OpenAPI document reads the same Structs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

import msgspec
from msgspec import inspect

from topics.envelope import parse_utc
from topics.errors import InvalidEnvelope, InvalidInput

S = TypeVar("S", bound=msgspec.Struct)

_MAX_DIGITS = 18
"""A whole number longer than this is out of every bound: never converted (no int() of a
thousand digits)."""

# An ISO time whose UTC offset lost its '+': a '+' in a URL query decodes to a space.
_PLUS_AS_SPACE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)? (\d{2}(?::?\d{2})?)\Z"
)


def check_plus_signs(query: Mapping[str, str]) -> None:
    """Refuse a query time whose ``+`` arrived as a space, naming the two ways to send it."""
    for name, raw in query.items():
        found = _PLUS_AS_SPACE.match(raw)
        if found is None:
            continue
        meant = raw[: found.start(1) - 1]
        raise InvalidInput(
            f"query parameter {name}={raw!r} has a space where its UTC offset's '+' was: in a "
            f"URL query '+' means a space. Encode the plus as %2B "
            f"({name}={meant}%2B{found.group(1)}) or write Z ({name}={meant}Z)."
        )


def whole(name: str, raw: str, *, low: int | None, high: int | None) -> int:
    """``raw`` as a whole number within [low, high]; InvalidInput naming the parameter."""
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput(f"query parameter {name}={raw!r} must be a whole number.")
    digits = raw.lstrip("0") or "0"
    value = int(digits) if len(digits) <= _MAX_DIGITS else None
    below = value is not None and low is not None and value < low
    above = value is None or (high is not None and value > high)
    if below or above:
        shown = value if value is not None else f"{raw[:_MAX_DIGITS]}… ({len(raw)} digits)"
        lowest = 0 if low is None else low
        highest = "any" if high is None else high
        raise InvalidInput(
            f"query parameter {name}={shown} must be between {lowest} and {highest}."
        )
    assert value is not None
    return value


def moment(name: str, raw: str) -> dt.datetime:
    """``raw`` as a UTC time (ISO 8601 with an offset, or Z)."""
    check_plus_signs({name: raw})
    try:
        return parse_utc(raw, name)
    except InvalidEnvelope as e:
        raise InvalidInput(f"query parameter {e}.") from e


def flag(name: str, raw: str) -> bool:
    """A flag is on when given bare (``?verbose``) or as ``true``, off as ``false``: the
    document's boolean (with ``allowEmptyValue``); anything else is refused."""
    if raw in ("", "true"):
        return True
    if raw == "false":
        return False
    raise InvalidInput(
        f"query parameter {name}={raw[:40]!r} must be true or false (or given bare)."
    )


@dataclass(frozen=True, slots=True)
class Field:
    """One declared parameter: its name and how its text becomes its value."""

    name: str
    parse: Callable[[str, str], object]
    description: str | None


def bare(kind: inspect.Type) -> inspect.Type:
    """The type under ``Optional[...]`` and ``Annotated[..., Meta(description=...)]``."""
    while True:
        if isinstance(kind, inspect.Metadata):
            kind = kind.type
        elif isinstance(kind, inspect.UnionType):
            kind = next(t for t in kind.types if not isinstance(t, inspect.NoneType))
        else:
            return kind


def _parser(field: inspect.Field) -> Callable[[str, str], object]:
    kind = bare(field.type)
    if isinstance(kind, inspect.IntType):
        low = kind.ge if kind.ge is not None else (kind.gt + 1 if kind.gt is not None else None)
        high = kind.le if kind.le is not None else (kind.lt - 1 if kind.lt is not None else None)
        return lambda name, raw: whole(name, raw, low=low, high=high)
    if isinstance(kind, inspect.BoolType):
        return flag
    if isinstance(kind, inspect.DateTimeType):
        return moment
    if isinstance(kind, inspect.StrType):
        low, high = kind.min_length or 0, kind.max_length
        return lambda name, raw: text(name, raw, low=low, high=high)
    return lambda name, raw: raw


def text(name: str, raw: str, *, low: int, high: int | None) -> str:
    """``raw`` if its length is within [low, high]; InvalidInput naming the parameter."""
    if len(raw) < low or (high is not None and len(raw) > high):
        span = f"{low} to {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"query parameter {name} must be {span} characters.")
    return raw


@cache
def fields_of(struct: type[msgspec.Struct]) -> tuple[Field, ...]:
    info = inspect.type_info(struct)
    assert isinstance(info, inspect.StructType), struct
    return tuple(Field(f.encode_name, _parser(f), _describe(f.type)) for f in info.fields)


def _describe(kind: inspect.Type) -> str | None:
    while True:
        if isinstance(kind, inspect.Metadata):
            found = (kind.extra_json_schema or {}).get("description")
            if isinstance(found, str):
                return found
            kind = kind.type
        elif isinstance(kind, inspect.UnionType):
            kind = next(t for t in kind.types if not isinstance(t, inspect.NoneType))
        else:
            return None


def bind_query(struct: type[S], query: Mapping[str, str]) -> S:
    """The query as ``struct``: each declared parameter parsed with our messages, then the
    Struct's own checks (lengths, patterns, ``__post_init__`` rules between parameters)."""
    values: dict[str, object] = {}
    for field in fields_of(struct):
        raw = query.get(field.name)
        if raw is None:
            continue
        values[field.name] = field.parse(field.name, raw)
    try:
        return msgspec.convert(values, struct, from_attributes=False)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"query parameter {_plain(str(e))}.") from None


def _plain(message: str) -> str:
    """msgspec's ``Expected `str` of length <= 256 - at `$.command_id``` as a clause."""
    what, _, where = message.partition(" - at ")
    name = where.strip("`").removeprefix("$.")
    what = what.replace("`", "").replace("Expected ", "must be ")
    return f"{name} {what}" if name else what
