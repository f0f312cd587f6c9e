"""The data schema: each kind's checks, paths in messages, and the InvalidEventData they raise."""

from __future__ import annotations

from typing import Any

import pytest

from snapshot_rules.schema import Kind, ListOf, Number, Obj, Text, check, fields
from topics.errors import InvalidEventData

NAN = float("nan")


@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [
        (Text(), "a", None),
        (Text(max_length=3), "abc", None),
        (Text(max_length=3), "abcd", "x must be at most 3 characters"),
        (Text(), "", "x must be a non-empty string"),
        (Text(), 5, "x must be a non-empty string"),
        (Text(), None, "x must be a non-empty string"),
        (Text(), ["a"], "x must be a non-empty string"),
        (Number(), 0, None),
        (Number(), -2.5, None),
        (Number(), 10**20, None),
        (Number(), True, "x must be a number"),
        (Number(), False, "x must be a number"),
        (Number(), "1", "x must be a number"),
        (Number(), None, "x must be a number"),
        (Number(integer=True), 3, None),
        (Number(integer=True), 3.0, "x must be an integer"),
        (Number(integer=True), True, "x must be an integer"),
        (Number(positive=True), 0.001, None),
        (Number(positive=True), 0, "x must be greater than 0"),
        (Number(positive=True), -1, "x must be greater than 0"),
        (Number(positive=True), NAN, "x must be greater than 0"),
        (Number(positive=True, integer=True), 1, None),
        (Number(positive=True, integer=True), 0, "x must be greater than 0"),
        (Number(positive=True, integer=True), 0.5, "x must be an integer"),
        (ListOf(Number()), [], None),
        (ListOf(Number()), [1, 2.5], None),
        (ListOf(Number()), (1, 2), "x must be a list"),
        (ListOf(Number()), {"0": 1}, "x must be a list"),
        (ListOf(Number(), min_items=1), [], "x must hold 1 to 10000 items"),
        (ListOf(Number(), max_items=2), [1, 2, 3], "x must hold 0 to 2 items"),
        (ListOf(Number()), [1, "2", 3], "x[1] must be a number"),
        (ListOf(ListOf(Text())), [["a"], ["b", ""]], "x[1][1] must be a non-empty string"),
        (Obj(), {}, None),
        (Obj(), {"any": "thing"}, None),
        (Obj(), [], "x must be an object"),
        (Obj(), None, "x must be an object"),
        (Obj({"a": Number()}), {}, "x.a is required"),
        (Obj({"a": Number()}), {"a": None}, "x.a must be a number"),
        (Obj({"a": Number()}), {"a": 1, "b": 2}, None),
        (Obj({"a": Number()}, closed=True), {"a": 1}, None),
        (Obj({"a": Number()}, closed=True), {"a": 1, "z": 2, "b": 3}, "x.b is not a known field"),
        (Obj(closed=True), {"a": 1}, "x.a is not a known field"),
        (Obj({"in": Obj({"n": Number()})}), {"in": {"n": "1"}}, "x.in.n must be a number"),
        (ListOf(Obj({"n": Number()})), [{"n": 1}, {}], "x[1].n is required"),
    ],
)
def test_kind_checks(kind: Kind, value: Any, problem: str | None) -> None:
    assert kind.check(value, "x") == problem


def test_a_missing_field_is_reported_before_an_unknown_one() -> None:
    schema = Obj({"a": Number(), "b": Text()}, closed=True)
    assert schema.check({"b": "x", "c": 1}, "data") == "data.a is required"


def test_the_first_failing_field_in_declaration_order_is_reported() -> None:
    schema = fields(a=Number(), b=Text())
    assert schema.check({"a": "no", "b": ""}, "data") == "data.a must be a number"


def test_fields_builds_an_object_schema() -> None:
    assert fields(amount=Number(positive=True)) == Obj({"amount": Number(positive=True)})
    assert fields(closed=True) == Obj({}, closed=True)


def test_check_raises_invalid_event_data_naming_the_event_type() -> None:
    schema = fields(amount=Number(positive=True))
    check(schema, "OrderPaid", {"amount": 3})
    with pytest.raises(InvalidEventData) as caught:
        check(schema, "OrderPaid", {"amount": -3})
    assert str(caught.value) == "OrderPaid: data.amount must be greater than 0."


def test_check_accepts_any_mapping_as_data() -> None:
    from types import MappingProxyType

    check(fields(n=Number()), "Counted", MappingProxyType({"n": 1}))
    with pytest.raises(InvalidEventData, match=r"data\.n is required"):
        check(fields(n=Number()), "Counted", MappingProxyType({}))


def test_the_base_kind_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Kind().check(1, "x")
