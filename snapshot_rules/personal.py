"""Declaring personal data: which fields of a domain's events are personal, and whose they are.

The command side seals each declared field with its subject's data key before anything is
produced (``workers.roles.personal``); what flows and is stored afterwards holds a sealed
string (``sealed:v1:<key id>:<nonce + ciphertext>``) in its place. Reducers, projections and
transitions keep working on sealed values: they copy them, never read them. Erasing a subject
destroys its key, so every copy of its sealed values becomes unreadable at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from snapshot_rules.schema import Kind, Obj
from topics.jsonvalue import Json

SEALED_PREFIX = "sealed:v1:"
SUBJECT_MAX = 256
"""The longest subject id a data key is named by: as long as a principal the door takes (a
chat sender is its token's subject)."""


def nameable(name: str) -> bool:
    """Whether ``name`` can name a subject or who acts (a principal, an operator): 1 to
    ``SUBJECT_MAX`` printable characters, no line break or escape code to forge a trail's line."""
    return 0 < len(name) <= SUBJECT_MAX and name.isprintable()


def subject_problem(subject: str) -> str | None:
    """Why ``subject`` cannot name a data key, or None: it is not ``nameable``, what an erasure
    takes, so that whatever is sealed can be erased."""
    if nameable(subject):
        return None
    return f"must be 1 to {SUBJECT_MAX} printable characters: it names the key an erasure destroys"


def is_sealed(value: Json) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


@dataclass(frozen=True, slots=True)
class Personal:
    """``fields`` of an event's data are personal data of one subject: the value of the data
    field ``subject`` (e.g. the chat's ``sender_id``), or the aggregate's id when None (an
    account is its holder's). The subject's id itself stays readable: it is the key's name."""

    fields: frozenset[str]
    subject: str | None = None

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("personal data needs at least one field")
        if self.subject is not None and self.subject in self.fields:
            raise ValueError(
                f"the subject field {self.subject!r} cannot itself be personal: it names the key"
            )

    def subject_of(self, aggregate_id: str, data: Mapping[str, Json]) -> str | None:
        """Whose data this is; None when the event names no subject (nothing to seal)."""
        if self.subject is None:
            return aggregate_id
        found = data.get(self.subject)
        return found if isinstance(found, str) and found else None


def personal(*fields: str, subject: str | None = None) -> Personal:
    """``personal("content", subject="sender_id")``: declare a domain's personal fields."""
    return Personal(frozenset(fields), subject)


@dataclass(frozen=True, slots=True)
class SealedOr(Kind):
    """A personal field as the store sees it: sealed, or (encryption off) what ``kind`` allows.
    The plaintext was checked against ``kind`` on the command side, before it was sealed."""

    kind: Kind

    def check(self, value: Json, path: str) -> str | None:
        if is_sealed(value):
            return None
        return self.kind.check(value, path)


def as_stored(schema: Obj, fields: frozenset[str]) -> Obj:
    """``schema`` with its personal fields accepting sealed values (built once per schema:
    the appender asks for every event it judges)."""
    key = (id(schema), fields)
    known = _AS_STORED.get(key)
    if known is not None and known[0] is schema:
        return known[1]
    stored = schema
    if fields & schema.fields.keys():
        kinds = {n: SealedOr(k) if n in fields else k for n, k in schema.fields.items()}
        stored = Obj(kinds, schema.closed)
    _AS_STORED[key] = (schema, stored)  # holding ``schema`` keeps its id from being reused
    return stored


_AS_STORED: dict[tuple[int, frozenset[str]], tuple[Obj, Obj]] = {}
