"""The kinds of value a setting holds, and the one sentence saying what a refused one expected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import urlsplit

from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, MultiHostUrl, ValidationError

from workers.ports.budgets import budget_table

MOST = 2**31 - 1
"""The bound of a number whose setting names only a least value."""


class Concern(BaseModel):
    """The settings of one concern: a field ``<field>`` is read from ``EVENTFLEET_<FIELD>``; its
    docstring is its line in the reference (docs/reference/configuration.md, generated). Only
    ``Settings``, which composes the concerns, is ever validated: a concern builds no validator."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True, defer_build=True)


def text(expected: str, ok: Callable[[str], bool]) -> AfterValidator:
    """Text that ``ok`` accepts; otherwise refused as "expected <expected>"."""

    def check(value: str) -> str:
        if not ok(value):
            raise ValueError(f"expected {expected}")
        return value

    return AfterValidator(check)


def budgets() -> AfterValidator:
    """A table of write budgets, ``name=rate[/burst],…`` (``workers.ports.budgets``)."""

    def check(value: str) -> str:
        budget_table(value)  # raises ValueError naming the entry and the form
        return value

    return AfterValidator(check)


HOSTS = "expected every host named, each with a port from 1 to 65535"


def url(*schemes: str) -> AfterValidator:
    """A connection URL, kept as written: one of ``schemes``, parsed as pydantic's multi-host URL
    (comma-separated hosts), each host named with a port from 1 to 65535 when one is given; or
    a ``unix://`` socket path."""
    starts = f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}"

    def check(raw: str) -> str:
        if "://" not in raw or raw.split("://", 1)[0] not in schemes:
            raise ValueError(starts)
        try:
            parsed = MultiHostUrl(raw)
        except ValidationError as e:  # pydantic-core's reason: "empty host", "invalid port number"
            raise ValueError(f"{e.errors()[0]['ctx']['error']}: {HOSTS}") from None
        hosts = parsed.hosts()
        if parsed.scheme == "unix":  # a socket path, not a network host
            if not parsed.path:
                raise ValueError("the URL names no socket path")
        elif not hosts:
            raise ValueError(f"the URL names no host: {HOSTS}")
        elif zero := [h["host"] for h in hosts if h["port"] == 0]:
            raise ValueError(f"'{zero[0]}:0' has no valid port: {HOSTS}")
        return raw

    return AfterValidator(check)


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _is_origin(raw: str) -> bool:
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment or parts.username)
    )


Name = Annotated[
    str,
    text("letters, digits, '.', '_' or '-'", lambda s: all(c.isalnum() or c in "._-" for c in s)),
]
EnvName = Annotated[
    str,
    text(
        "an environment variable name (letters, digits, '_')",
        lambda s: not s or (s.replace("_", "a").isalnum() and not s[0].isdigit()),
    ),
]
FilePath = Annotated[str, text("a file path, not a directory", lambda s: not s.endswith("/"))]
"""Checked for existence where it is used (workers.runtime.connections), so the message can say
which file of which setting is missing; here only that it names a file."""
Origins = Annotated[
    str,
    text(
        "comma-separated origins like https://app.example (scheme://host[:port])",
        lambda s: all(_is_origin(p.strip()) for p in s.split(",") if p.strip()),
    ),
]
Upper = BeforeValidator(_upper)
SecurityProtocol = Annotated[Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], Upper]
SaslMechanism = Annotated[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], Upper]

_EXPECTED = {
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_parsing": "expected true or false",
}


def expected(error: ErrorDetails, field: FieldInfo) -> str:
    """What ``field`` expected, for the one line that refuses a value: "expected ..."."""
    kind, context = error["type"], error.get("ctx", {})
    if kind == "value_error":
        return str(context["error"])
    if kind in ("greater_than_equal", "less_than_equal"):
        low = next(m.ge for m in field.metadata if isinstance(m, Ge))
        high = next(m.le for m in field.metadata if isinstance(m, Le))
        return f"expected a number from {low} to {high}"
    if kind == "literal_error":
        return f"expected {context['expected']}"
    return _EXPECTED.get(kind, error["msg"])
