"""Declaring an aggregate type: its events, transitions, reducer, snapshot rule and routes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from snapshot_rules.projection import Projection
from snapshot_rules.queries import Query
from snapshot_rules.replay import Reducer, State
from snapshot_rules.rules import Rule, never
from snapshot_rules.schema import Obj, check
from topics.envelope import AGGREGATE_TYPE_RE, Event
from topics.errors import TransitionRejected, UnknownAggregateType, UnknownEventType

NEW = "none"
"""In ``after``: the event may open a new aggregate (no event marked before it)."""

StateValidator = Callable[[State | None, Event], str | None]
"""Sync mode: return a rejection reason, or None to accept the requested event."""


class Mode(StrEnum):
    ASYNC = "async"  # validate against the marked latest event type (Redis), store later
    SYNC = "sync"  # validate against replayed state, store, then publish
    STORAGE = "storage"  # changed only through EventSourcedStorage; commands refuse appends


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event type: what its data looks like and which event types may precede it."""

    schema: Obj = field(default_factory=Obj)
    after: frozenset[str] = frozenset()


def event(schema: Obj | None = None, *, after: Iterable[str] = ()) -> EventSpec:
    return EventSpec(schema or Obj(), frozenset(after))


@dataclass(frozen=True, slots=True)
class Route:
    """Forward stored events to ``topic`` (prefixed), optionally only some event types."""

    topic: str
    types: frozenset[str] | None = None

    def matches(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types


@dataclass(frozen=True, slots=True)
class Domain:
    """Everything eventfleet needs to know about one aggregate type."""

    name: str
    events: Mapping[str, EventSpec]
    reducer: Reducer
    mode: Mode = Mode.ASYNC
    snapshot_rule: Rule = field(default_factory=never)
    routes: tuple[Route, ...] = ()
    validator: StateValidator | None = None
    projections: tuple[Projection, ...] = ()
    queries: tuple[Query, ...] = ()

    def __post_init__(self) -> None:
        if not AGGREGATE_TYPE_RE.match(self.name):
            raise ValueError(f"domain name {self.name!r} must match {AGGREGATE_TYPE_RE.pattern}")
        if self.mode is Mode.SYNC and self.validator is None:
            raise ValueError(f"sync domain {self.name!r} needs a state validator")
        for name, spec in self.events.items():
            unknown = spec.after - self.events.keys() - {NEW}
            if unknown:
                raise ValueError(f"{self.name}.{name} may follow unknown types {sorted(unknown)}")

    def spec(self, event_type: str) -> EventSpec:
        try:
            return self.events[event_type]
        except KeyError:
            raise UnknownEventType(
                f"{self.name} has no event type {event_type!r}; "
                f"known types: {', '.join(sorted(self.events))}."
            ) from None

    def check_data(self, event_type: str, data: Mapping[str, Any]) -> None:
        check(self.spec(event_type).schema, event_type, data)

    def check_transition(self, aggregate_id: str, current: str | None, requested: str) -> None:
        """Async mode: may ``requested`` follow ``current`` (None: a new aggregate)?"""
        allowed = self.spec(requested).after
        if (current or NEW) in allowed:
            return
        shown = current or "nothing (new aggregate)"
        raise TransitionRejected(
            f"{self.name} {aggregate_id}: {requested} may not follow {shown}; "
            f"it may follow {', '.join(sorted(allowed)) or 'nothing'}.",
            current=current,
            allowed=sorted(allowed),
        )

    def downstream_topics(self) -> list[str]:
        return [route.topic for route in self.routes]


class Domains:
    """The enabled domains by aggregate type."""

    def __init__(self, domains: Iterable[Domain]) -> None:
        self._by_name: dict[str, Domain] = {}
        for domain in domains:
            if domain.name in self._by_name:
                raise ValueError(f"domain {domain.name!r} is declared twice")
            self._by_name[domain.name] = domain
        self.projections()  # names and routes must be unique: fail at declaration
        self.queries()

    def __iter__(self) -> Any:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Domain:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownAggregateType(
                f"no domain is declared for aggregate type {name!r}; "
                f"enabled: {', '.join(sorted(self._by_name)) or 'none'}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def downstream_topics(self) -> list[str]:
        return sorted({topic for domain in self for topic in domain.downstream_topics()})

    def projections(self) -> dict[str, Projection]:
        """Every enabled domain's projections, by name."""
        found: dict[str, Projection] = {}
        for domain in self:
            for projection in domain.projections:
                if found.setdefault(projection.name, projection) is not projection:
                    raise ValueError(f"projection {projection.name!r} is declared twice")
        return found

    def queries(self) -> list[Query]:
        """Every enabled domain's read routes."""
        found: dict[str, Query] = {}
        for domain in self:
            for query in domain.queries:
                if found.setdefault(query.path, query) is not query:
                    raise ValueError(f"query route {query.path!r} is declared twice")
        return list(found.values())
