"""A small declarative schema for event data: required fields, their kinds and bounds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from topics.errors import InvalidEventData
from topics.jsonvalue import Json


class Kind:
    """One field's kind; ``check`` returns an error sentence or None."""

    def check(self, value: Json, path: str) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Text(Kind):
    max_length: int = 10_000

    def check(self, value: Json, path: str) -> str | None:
        if not isinstance(value, str) or not value:
            return f"{path} must be a non-empty string"
        if len(value) > self.max_length:
            return f"{path} must be at most {self.max_length} characters"
        return None


@dataclass(frozen=True, slots=True)
class Number(Kind):
    """A JSON number; bounds keep what a reducer computes from it storable (BSON int64)."""

    positive: bool = False
    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: Json, path: str) -> str | None:
        wrong = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong or (self.integer and not isinstance(value, int)):
            return f"{path} must be {'an integer' if self.integer else 'a number'}"
        if self.positive and not value > 0:
            return f"{path} must be greater than 0"
        if self.minimum is not None and value < self.minimum:
            return f"{path} must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{path} must be at most {self.maximum:g}"
        return None


@dataclass(frozen=True, slots=True)
class Optional(Kind):
    """A field that may be absent; when present it must satisfy ``kind`` (null is not absent)."""

    kind: Kind

    def check(self, value: Json, path: str) -> str | None:
        return self.kind.check(value, path)


@dataclass(frozen=True, slots=True)
class Choice(Kind):
    """One of a fixed set of strings (``Choice(("buy", "sell"))``)."""

    options: tuple[str, ...]

    def check(self, value: Json, path: str) -> str | None:
        if not isinstance(value, str) or value not in self.options:
            return f"{path} must be one of {', '.join(repr(o) for o in self.options)}"
        return None


def optional(kind: Kind) -> Optional:
    """``fields(note=optional(Text()))``: ``note`` may be left out."""
    return Optional(kind)


@dataclass(frozen=True, slots=True)
class Obj(Kind):
    """A JSON object with required fields (and, unless ``closed``, any others)."""

    fields: Mapping[str, Kind] = field(default_factory=dict)
    closed: bool = False

    def check(self, value: Json, path: str) -> str | None:
        if not isinstance(value, dict):
            return f"{path} must be an object"
        for name, kind in self.fields.items():
            if name not in value:
                if isinstance(kind, Optional):
                    continue
                return f"{path}.{name} is required"
            problem = kind.check(value[name], f"{path}.{name}")
            if problem:
                return problem
        if self.closed:
            extra = sorted(value.keys() - self.fields.keys())
            if extra:
                return f"{path}.{extra[0]} is not a known field"
        return None


@dataclass(frozen=True, slots=True)
class ListOf(Kind):
    item: Kind
    min_items: int = 0
    max_items: int = 10_000

    def check(self, value: Json, path: str) -> str | None:
        if not isinstance(value, list):
            return f"{path} must be a list"
        if not self.min_items <= len(value) <= self.max_items:
            return f"{path} must hold {self.min_items} to {self.max_items} items"
        for index, item in enumerate(value):
            problem = self.item.check(item, f"{path}[{index}]")
            if problem:
                return problem
        return None


def fields(closed: bool = False, **kinds: Kind) -> Obj:
    """``fields(amount=Number(positive=True))``: the schema of one event type's data."""
    return Obj(kinds, closed)


def check(schema: Obj, event_type: str, data: Mapping[str, Json]) -> None:
    problem = schema.check(dict(data), "data")
    if problem:
        raise InvalidEventData(f"{event_type}: {problem}.")
