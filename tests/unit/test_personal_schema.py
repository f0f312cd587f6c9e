"""A schema as stored: its personal fields accept a sealed value, every other check stays, and it
is built once per schema (the appender asks for it with every event it judges)."""

from __future__ import annotations

from snapshot_rules.personal import SEALED_PREFIX, as_stored
from snapshot_rules.schema import Number, Obj, Text

SCHEMA = Obj({"email": Text(max_length=5), "amount": Number()})
SEALED = SEALED_PREFIX + "key-1:" + "A" * 40


def test_a_personal_field_takes_a_sealed_value_and_keeps_its_own_check_otherwise() -> None:
    stored = as_stored(SCHEMA, frozenset({"email"}))
    assert stored.check({"email": SEALED, "amount": 1}, "data") is None
    assert stored.check({"email": "far too long", "amount": 1}, "data") == (
        "data.email must be at most 5 characters"
    )
    assert stored.check({"email": SEALED, "amount": True}, "data") is not None


def test_a_field_not_declared_personal_refuses_a_sealed_value() -> None:
    stored = as_stored(SCHEMA, frozenset({"email"}))
    assert stored.check({"email": "a@b", "amount": SEALED}, "data") is not None


def test_built_once_per_schema_and_fields() -> None:
    assert as_stored(SCHEMA, frozenset({"email"})) is as_stored(SCHEMA, frozenset({"email"}))
    assert as_stored(SCHEMA, frozenset({"amount"})) is not as_stored(SCHEMA, frozenset({"email"}))
    assert as_stored(SCHEMA, frozenset({"name"})) is SCHEMA  # nothing personal in it


def test_another_schema_with_equal_fields_is_not_confused_with_the_first() -> None:
    other = Obj({"email": Text(), "amount": Number()})
    stored = as_stored(other, frozenset({"email"}))
    assert stored.check({"email": "longer than five", "amount": 1}, "data") is None
