"""Frozen slotted dataclasses built at half the cost: each slot set through its own descriptor.

``dataclass(frozen=True)`` writes an ``__init__`` that sets every field with
``object.__setattr__(self, "name", value)``: a lookup of the name along the type's MRO per
field, so a frozen value of nine fields costs four to five times a plain one. The values a
command or a stored event passes through (the event, its metadata, the mark, the outcome) are
built several times per request; ``slot_init`` gives such a class an ``__init__`` with the same
signature, defaults and factories that sets each slot through its member descriptor directly.
Everything else (frozen, ``==``, ``hash``, ``repr``, ``dataclasses.replace``, pickling) stays
the dataclass's own.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TypeVar, cast

T = TypeVar("T")


class _Factory:
    """The default of a field with a factory, as ``dataclass`` shows it: ``<factory>``."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def slot_init(cls: type[T]) -> type[T]:
    """``cls`` with the faster ``__init__``; TypeError for a class it cannot build one for
    (not a frozen slotted dataclass, an ``InitVar``, a field left out of ``__init__``, a
    ``__post_init__``), at import, never silently different."""
    if not dataclasses.is_dataclass(cls) or not cls.__dict__["__dataclass_params__"].frozen:
        raise TypeError(f"slot_init: {cls.__qualname__} is not a frozen dataclass")
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"slot_init: {cls.__qualname__} has no slots (dataclass(slots=True))")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"slot_init: {cls.__qualname__} has a __post_init__")
    namespace: dict[str, object] = {"_FACTORY": _FACTORY}
    positional: list[str] = []
    keyword_only: list[str] = []
    body: list[str] = []
    fields = dataclasses.fields(cls)
    if len(fields) != len(cls.__dataclass_fields__):
        raise TypeError(f"slot_init: {cls.__qualname__} has an InitVar or a ClassVar field")
    for f in fields:
        if not f.init:
            raise TypeError(f"slot_init: {cls.__qualname__}.{f.name} is left out of __init__")
        name = f.name
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = f.default
            parameter = f"{name}=_default_{name}"
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            parameter = f"{name}=_FACTORY"
            body.append(f"    if {name} is _FACTORY:\n        {name} = _factory_{name}()")
        else:
            parameter = name
        (keyword_only if f.kw_only else positional).append(parameter)
        body.append(f"    _set_{name}(self, {name})")
    parameters = positional + (["*", *keyword_only] if keyword_only else [])
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)  # the way dataclasses builds its own __init__
    init = cast(Callable[..., None], namespace["__init__"])  # exec made it
    original = cls.__init__
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(original.__annotations__)
    if _shape(inspect.signature(init)) != _shape(inspect.signature(original)):
        raise TypeError(f"slot_init: {cls.__qualname__}'s __init__ would change its signature")
    setattr(cls, "__init__", init)  # noqa: B010  # mypy refuses assigning to a method
    return cls


def _shape(signature: inspect.Signature) -> list[tuple[str, object, str]]:
    """Names, kinds and the defaults' reprs (a factory shows as ``<factory>`` in both)."""
    return [(p.name, p.kind, repr(p.default)) for p in signature.parameters.values()]
