"""Event names, the events a storage writes for its changes, and event mappers: the domain events
a change yields besides its own event.

Every change is stored as exactly one event (``<Prefix>Created/Updated/Deleted`` by default, or
the names a collection declares, ``EventTypes.named``: its own names, such as ``UserCreated``), so a
document's version and its event stream stay one to one. A mapper adds *domain*
events (``UserEmailChanged``) derived from the change; they travel inside that one
stored event (``data.mapped``) and are published on the bus as events of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from topics.envelope import EVENT_TYPE_RE, Event, validate_data
from topics.errors import InvalidEnvelope, InvalidInput
from topics.jsonvalue import Json, JsonObject
from workers.storage.documents import VERSION

Operation = Literal["create", "update", "delete"]
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
"""The fleet's default ``EVENTFLEET_MAX_EVENT_BYTES`` (a test keeps the two equal)."""


@dataclass(frozen=True, slots=True)
class EventTypes:
    """The type names of a collection's own events."""

    created: str
    updated: str
    deleted: str

    @classmethod
    def with_prefix(cls, prefix: str) -> EventTypes:
        types = cls(f"{prefix}Created", f"{prefix}Updated", f"{prefix}Deleted")
        if not EVENT_TYPE_RE.match(types.created):
            raise InvalidInput(
                f"event type prefix {prefix!r} does not make a valid event type "
                f"({types.created!r} must match {EVENT_TYPE_RE.pattern})."
            )
        return types

    @classmethod
    def named(cls, *, created: str, updated: str, deleted: str) -> EventTypes:
        """Per-operation names of the collection's own (``GameStarted``, ``GameMoved``,
        ``GameEnded``): three distinct valid event types."""
        types = cls(created, updated, deleted)
        for operation, name in (("created", created), ("updated", updated), ("deleted", deleted)):
            if not isinstance(name, str) or not EVENT_TYPE_RE.match(name):
                raise InvalidInput(
                    f"event type {operation}={name!r} is not valid; it must match "
                    f"{EVENT_TYPE_RE.pattern} (e.g. 'GameStarted')."
                )
        if len({created, updated, deleted}) < 3:
            raise InvalidInput(
                f"event types {created!r}, {updated!r}, {deleted!r} must be three different "
                "names: a replay tells the operations apart by them."
            )
        return types

    def of(self, operation: Operation) -> str:
        return {"create": self.created, "update": self.updated, "delete": self.deleted}[operation]


@dataclass(frozen=True, slots=True)
class ChangeEvents:
    """The events a storage writes, one per change: their names, where their version is kept and
    how large one may be.

    ``type_prefix``: names them ``<type_prefix>Created/Updated/Deleted`` (by default the
    collection's name in CamelCase, ``game_states`` -> ``GameStates``); ``event_types``: names
    each operation's event instead (``EventTypes.named(...)``; not with ``type_prefix``). Pass
    the same to ``storage_domain``. ``version_field``: the document field that holds the
    version, which is the event's (``version`` by default; another name for documents that
    already keep their version under it). ``max_event_bytes``: a change whose event is larger
    is refused (pass the fleet's ``Settings.max_event_bytes``: consumers of events.stored
    dead-letter larger ones). The names are checked when the storage is built, against its
    collection.
    """

    type_prefix: str | None = None
    event_types: EventTypes | None = None
    version_field: str = VERSION
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES

    def __post_init__(self) -> None:
        size = self.max_event_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidInput(
                f"ChangeEvents max_event_bytes={size!r}: use an integer >= 1 (the fleet's"
                f" EVENTFLEET_MAX_EVENT_BYTES, {DEFAULT_MAX_EVENT_BYTES} by default)."
            )


def default_prefix(collection: str) -> str:
    """CamelCase of the collection name, never singularised: ``game_states`` -> ``GameStates``.

    English plurals do not reduce to a rule that is both simple and right
    (``status``, ``addresses``), so pass ``type_prefix="GameState"`` for singular names.
    """
    return "".join(part[:1].upper() + part[1:] for part in collection.split("_") if part)


def storage_event_types(
    collection: str, type_prefix: str | None = None, event_types: EventTypes | None = None
) -> EventTypes:
    """The names a collection's events take: declared per operation, or from the prefix."""
    if event_types is not None and type_prefix is not None:
        raise InvalidInput(
            f"{collection}: pass type_prefix or event_types, not both (event_types names each "
            "operation's event itself)."
        )
    if event_types is not None:
        return EventTypes.named(
            created=event_types.created, updated=event_types.updated, deleted=event_types.deleted
        )
    return EventTypes.with_prefix(type_prefix or default_prefix(collection))


@dataclass(frozen=True, slots=True)
class Change:
    """One change as a mapper sees it; ``before``/``after`` are contents (None: absent)."""

    collection: str
    doc_id: str
    operation: Operation
    version: int
    client_id: str
    before: JsonObject | None
    after: JsonObject | None
    diff: Json
    changed_paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """A domain event a mapper derives from a change: its type and data."""

    type: str
    data: JsonObject


class EventMapper(Protocol):
    """Derives domain events from a change; must be pure (it runs again when a write retries)."""

    def map(self, change: Change) -> Sequence[DomainEvent]: ...


@dataclass(frozen=True, slots=True)
class FieldChangedMapper:
    """Yields ``event_type {data_key: new value}`` when ``field`` is set to a new value.

    A dotted ``field`` names a nested one. Creation counts as setting it only when
    ``on_create`` is true; a removal or a delete yields nothing.
    """

    field: str
    event_type: str
    data_key: str
    on_create: bool = False

    def map(self, change: Change) -> Sequence[DomainEvent]:
        if change.operation == "delete" or change.after is None:
            return ()
        if change.operation == "create" and not self.on_create:
            return ()
        touched = any(
            self.field == path
            or self.field.startswith(f"{path}.")
            or path.startswith(f"{self.field}.")
            for path in change.changed_paths
        )
        value = _lookup(change.after, self.field)
        if not touched or value is None:
            return ()
        return (DomainEvent(self.event_type, {self.data_key: value}),)


@dataclass(frozen=True, slots=True)
class ChainMapper:
    """Runs several mappers in order and concatenates what they yield."""

    mappers: tuple[EventMapper, ...]

    def map(self, change: Change) -> Sequence[DomainEvent]:
        return [event for mapper in self.mappers for event in mapper.map(change)]


def mapped_records(
    collection: str, doc_id: str, derived: Sequence[DomainEvent]
) -> list[JsonObject]:
    """Check a mapper's output and turn it into the ``data.mapped`` list of the stored event."""
    records = []
    for event in derived:
        if not isinstance(event, DomainEvent) or not EVENT_TYPE_RE.match(event.type):
            raise InvalidInput(
                f"{collection} {doc_id}: the event mapper returned {event!r}; return DomainEvent "
                f"values whose type matches {EVENT_TYPE_RE.pattern}."
            )
        try:
            validate_data(event.data, f"mapped {event.type}")
        except InvalidEnvelope as e:
            raise InvalidInput(f"{collection} {doc_id}: the event mapper returned {e}.") from e
        records.append({"type": event.type, "data": event.data})
    return records


def derived_events(stored: Event) -> list[Event]:
    """The bus events of a stored event's ``data.mapped``: same aggregate, version and metadata.

    Their ids derive from the stored event's id, so a republished change (after a
    recovery) carries the same ids and bus consumers deduplicate it.
    """
    out = []
    for index, record in enumerate(stored.data.get("mapped") or ()):
        derived_id = uuid.uuid5(uuid.UUID(stored.id), f"{index}:{record['type']}")
        out.append(replace(stored, id=str(derived_id), type=record["type"], data=record["data"]))
    return out


def _lookup(content: JsonObject, dotted: str) -> Json:
    value: Json = content
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
