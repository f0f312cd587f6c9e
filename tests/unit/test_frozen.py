"""slot_init: the same frozen dataclass, built through its slots' descriptors."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field

import pytest

from topics.envelope import Event, Metadata
from topics.frozen import slot_init
from workers.ports import Delivery, MarkRequest, MarkResult, Outgoing
from workers.roles.command.intake import Command
from workers.roles.command.requests import CommandRequest
from workers.roles.outcomes import Accepted


@slot_init
@dataclass(frozen=True, slots=True)
class Quick:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int = field(default=4, kw_only=True)


@dataclass(frozen=True, slots=True)
class Plain:  # the same fields, dataclass's own __init__
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int = field(default=4, kw_only=True)


QUICK: Callable[..., object] = Quick
PLAIN: Callable[..., object] = Plain
"""Both, called with arguments a type checker cannot follow."""


def test_it_builds_what_the_dataclass_builds() -> None:
    cases: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((1,), {}), ((1, "x", [2]), {"d": 5}), ((), {"a": 3, "c": [1]})
    ]  # fmt: skip
    for args, kwargs in cases:
        quick, plain = QUICK(*args, **kwargs), PLAIN(*args, **kwargs)
        assert isinstance(quick, Quick) and isinstance(plain, Plain)
        assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert Quick(1).c is not Quick(1).c  # a factory is called per value
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))


def test_the_value_stays_frozen_hashable_and_copyable() -> None:
    q = Quick(1, "x", d=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.a = 2  # type: ignore[misc]  # the point: assigning must fail
    assert q == Quick(1, "x", d=2) and q != Quick(2, "x", d=2)
    assert hash(Delivery("t", 1, 2)) == hash(Delivery("t", 1, 2)) != hash(Delivery("t", 1, 3))
    assert dataclasses.replace(q, b="y") == Quick(1, "y", d=2)
    assert pickle.loads(pickle.dumps(q)) == q and copy.deepcopy(q) == q
    assert repr(q) == "Quick(a=1, b='x', c=[], d=2)"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing 1 required positional argument: 'a'"),
        ((1, "x", [], 5), {}, "takes from 2 to 4 positional arguments but 5 were given"),
        ((1,), {"e": 1}, "unexpected keyword argument 'e'"),
        ((1,), {"a": 1}, "multiple values for argument 'a'"),
    ],
)
def test_a_wrong_call_fails_as_the_dataclass_fails(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        QUICK(*args, **kwargs)
    with pytest.raises(TypeError, match=message):
        PLAIN(*args, **kwargs)


def test_what_it_cannot_build_is_refused_at_import() -> None:
    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class LeftOut:
        a: int
        b: int = field(default=0, init=False)

    @dataclass(frozen=True, slots=True)
    class WithPostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        b: InitVar[int]

    for cls, why in [
        (NotFrozen, "not a frozen dataclass"), (NoSlots, "has no slots"),
        (LeftOut, "left out of __init__"), (WithPostInit, "__post_init__"),
        (WithInitVar, "InitVar"), (int, "not a frozen dataclass"),
    ]:  # fmt: skip
        with pytest.raises(TypeError, match=why):
            slot_init(cls)


@pytest.mark.parametrize(
    "cls",
    [
        Event,
        Metadata,
        CommandRequest,
        Command,
        MarkRequest,
        MarkResult,
        Outgoing,
        Delivery,
        Accepted,
    ],
)
def test_the_hot_values_use_it(cls: type) -> None:
    """The values every command and stored event builds: each with the faster __init__ (a
    class that lost it would build at dataclass's cost again)."""
    assert "_set_" in " ".join(vars(cls)["__init__"].__code__.co_names)
