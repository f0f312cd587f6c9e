"""Declaring an aggregate type: its events, transitions, reducer, snapshot rule and routes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from snapshot_rules.access import OPEN, Access
from snapshot_rules.declaration import ANY, NEW, after_names, check_domain, did_you_mean
from snapshot_rules.personal import Personal, as_stored
from snapshot_rules.projection import Projection
from snapshot_rules.queries import Query
from snapshot_rules.replay import Reducer, State
from snapshot_rules.rules import Rule, never
from snapshot_rules.schema import Obj, check
from snapshot_rules.upcasting import Upcast, lift
from topics.envelope import AGGREGATE_TYPE_RE, Event
from topics.errors import TransitionRejected, UnknownAggregateType, UnknownEventType
from topics.jsonvalue import Json

__all__ = [
    "ANY",
    "NEW",
    "Derive",
    "Domain",
    "Domains",
    "EventSpec",
    "Mode",
    "Retention",
    "Route",
    "StateValidator",
    "Upcast",
    "event",
]

StateValidator = Callable[[State | None, Event], str | None]
"""Sync mode: return a rejection reason, or None to accept the requested event."""
Derive = Callable[[Event], Sequence[Event]]
"""Pure: the events a stored event yields besides itself (e.g. a storage mapper's
``UserEmailChanged``). They are never stored; the forwarder and the bridge publish them as
records of their own type, keyed like their source."""


class Mode(StrEnum):
    ASYNC = "async"  # validate against the marked latest event type (Redis), store later
    SYNC = "sync"  # validate against replayed state, store, then publish
    STORAGE = "storage"  # changed only through EventSourcedStorage; commands refuse appends


RESERVED_NAMES = frozenset({"events"})
"""Aggregate type names the HTTP API's own routes take (``/v1/events``)."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event type: its data schema, the event types that may precede it, its older versions.

    ``after`` holds ``ANY`` alone when the transition is not checked. ``upcasts`` are the older
    schema versions, oldest first; the current version is ``len(upcasts) + 1``.
    """

    schema: Obj = field(default_factory=Obj)
    after: frozenset[str] = frozenset({ANY})
    upcasts: tuple[Upcast, ...] = ()

    @property
    def version(self) -> int:
        """The current schema version: what new events of this type are written with."""
        return len(self.upcasts) + 1

    @property
    def checked(self) -> bool:
        """Whether the event type is checked against its predecessor."""
        return ANY not in self.after


def event(
    schema: Obj | None = None,
    *,
    after: Iterable[str] | str = ANY,
    upcasts: Sequence[Upcast] = (),
) -> EventSpec:
    """Declare an event type.

    ``after``: the event types it may follow (``NEW``: it may open an aggregate), or ``ANY``
    (the default) for no transition check. ``upcasts``: its older schema versions, oldest
    first, each with the pure function lifting its data to the next version.
    """
    return EventSpec(schema or Obj(), after_names(after), tuple(upcasts))


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history stays in the hot collection; older events move to the archive.

    An event moves once it is covered by the aggregate's snapshot, is not the aggregate's
    newest, and is older than ``keep_s`` seconds or beyond the newest ``keep_last`` events
    (whichever is given; both: it must be past both). Reads never notice: before the archive
    horizon they read the archive.
    """

    keep_s: float | None = None
    keep_last: int | None = None

    def __post_init__(self) -> None:
        if self.keep_s is None and self.keep_last is None:
            raise ValueError("retention needs keep_s (an age) or keep_last (a count), or both")
        if self.keep_s is not None and self.keep_s < 0:
            raise ValueError(f"retention keep_s must be 0 or more, not {self.keep_s}")
        if self.keep_last is not None and self.keep_last < 1:
            raise ValueError(f"retention keep_last must be 1 or more, not {self.keep_last}")


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
    derive: Derive | None = None
    derived_types: frozenset[str] = frozenset()
    """The types ``derive`` may yield (routes may name them)."""
    personal: Personal | None = None
    """The personal fields of its events and whose they are (sealed on the command side)."""
    retention: Retention | None = None
    """How much history stays hot; None: every event stays in the hot collection."""
    access: Access = OPEN
    """Who may send each event type and read the aggregates and views (``snapshot_rules.access``)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.access.send) - set(self.events))
        if unknown:
            raise ValueError(f"{self.name}: access names {unknown[0]!r}, which is no event type")
        if not AGGREGATE_TYPE_RE.match(self.name):
            raise ValueError(f"domain name {self.name!r} must match {AGGREGATE_TYPE_RE.pattern}")
        if self.name in RESERVED_NAMES:
            raise ValueError(
                f"domain name {self.name!r} is taken: /v1/{self.name} is the global read of "
                "every domain's events (GET /v1/events/subscribe would shadow its type's "
                "subscription); name the domain otherwise"
            )
        if self.validator is not None and not callable(self.validator):
            raise ValueError(f"{self.name}: validator must be a function (state, event) -> reason")
        check_domain(
            self.name,
            self.events,
            rule_types=self.snapshot_rule.event_types(),
            routes=[(route.topic, route.types) for route in self.routes],
            derived_types=self.derived_types,
        )
        if self.personal is not None:
            self._check_personal(self.personal)

    def _check_personal(self, personal: Personal) -> None:
        named = {n for spec in self.events.values() for n in spec.schema.fields}
        for name in sorted(personal.fields | {personal.subject or ""} - {""}):
            if name not in named:
                raise ValueError(
                    f"{self.name}: personal field {name!r} is in no event type's schema; name "
                    f"fields of {', '.join(sorted(named)) or 'its events'}."
                )

    def spec(self, event_type: str) -> EventSpec:
        try:
            return self.events[event_type]
        except KeyError:
            raise UnknownEventType(
                f"{self.name} has no event type {event_type!r}; "
                f"known types: {', '.join(sorted(self.events))}."
            ) from None

    def check_data(self, event_type: str, data: Mapping[str, Json]) -> None:
        check(self.spec(event_type).schema, event_type, data)

    def check_as_written(self, event: Event) -> Event:
        """``event`` lifted to the current schema version, its data checked against the schema
        of the version it was written with *and* the current one: an upcaster never turns bad
        data into plausible data (a ``true`` price read as a price). Raises InvalidEventData."""
        spec = self.spec(event.type)
        written = event.schema_version
        if 1 <= written <= len(spec.upcasts):
            version = f"{event.type} (schema version {written})"
            check(self._as_stored(spec.upcasts[written - 1].schema), version, event.data)
        current = self.upcast(event)
        check(self._as_stored(spec.schema), event.type, current.data)
        return current

    def _as_stored(self, schema: Obj) -> Obj:
        """Personal fields arrive sealed; their plaintext was checked before it was sealed."""
        return schema if self.personal is None else as_stored(schema, self.personal.fields)

    def check_transition(self, aggregate_id: str, current: str | None, requested: str) -> None:
        """May ``requested`` follow ``current`` (None: a new aggregate)? ``after=ANY``: always."""
        allowed = self.spec(requested).after
        if ANY in allowed or (current or NEW) in allowed:
            return
        shown = current or "nothing (new aggregate)"
        raise TransitionRejected(
            f"{self.name} {aggregate_id}: {requested} may not follow {shown}; "
            f"it may {_follow(allowed)}.",
            current=current,
            allowed=sorted(allowed),
        )

    def schema_version(self, event_type: str) -> int:
        """The current schema version of ``event_type``: new events are written with it."""
        return self.spec(event_type).version

    def upcast(self, event: Event) -> Event:
        """``event`` as the current schema version of its type (unknown types as they are)."""
        spec = self.events.get(event.type)
        if spec is None:
            return event
        return lift(self.name, event, spec.upcasts)

    def derived(self, event: Event) -> list[Event]:
        """The events ``event`` yields besides itself (``derive``), none without one."""
        return [] if self.derive is None else list(self.derive(event))

    def downstream_topics(self) -> list[str]:
        return [route.topic for route in self.routes]


def _follow(allowed: frozenset[str]) -> str:
    named = sorted(allowed - {NEW})
    if NEW not in allowed:
        return f"follow {', '.join(named)}"
    return (
        f"open a new aggregate or follow {', '.join(named)}"
        if named
        else "only open a new aggregate"
    )


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

    def __iter__(self) -> Iterator[Domain]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Domain:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownAggregateType(
                f"no domain is declared for aggregate type {name!r}"
                f"{did_you_mean(name, self._by_name)}; "
                f"enabled: {', '.join(sorted(self._by_name)) or 'none'}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def downstream_topics(self) -> list[str]:
        return sorted({topic for domain in self for topic in domain.downstream_topics()})

    def upcast(self, event: Event) -> Event:
        """``event`` as the current schema version, if its domain is enabled; else as it is."""
        domain = self._by_name.get(event.aggregate_type)
        return event if domain is None else domain.upcast(event)

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
