"""Event schema versions and upcasters: old stored events read as the current version.

An event type's data schema may change. The store never rewrites an event: each stored event
keeps the schema version it was written with (``Event.schema_version``, 1 when absent), and
a domain declares, per event type, the schemas of its older versions and one pure function
per step that lifts data from version k to k+1 (``Upcast``). Every reader that hands events
to domain code or to the outside (replay, queries, projections, the forwarder, the bridge,
the store's judge, the auditor) calls ``upcast`` first, so all of them see the current
version and check the current schema.

Upcasters change data only: an event keeps its type, id, version and metadata. A renamed
type is a new event type (keep the old one declared, and its reducer branch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from snapshot_rules.schema import Obj
from topics.envelope import Event
from topics.errors import ReplayFailed, UnknownSchemaVersion
from topics.jsonvalue import Json, JsonObject

Lift = Callable[[Mapping[str, Json]], JsonObject]
"""Pure: data at schema version k -> data at version k+1 (a new dict; the input is not changed)."""


@dataclass(frozen=True, slots=True)
class Upcast:
    """One older schema version of an event type: what its data looked like, and how to lift it."""

    schema: Obj
    lift: Lift


def check_upcasts(where: str, upcasts: Sequence[Upcast]) -> None:
    """Declaration-time checks: each step is an ``Upcast`` of an ``Obj`` schema and a function."""
    for index, step in enumerate(upcasts, start=1):
        if not isinstance(step, Upcast):
            raise ValueError(
                f"{where}: upcasts[{index - 1}] is {step!r}; declare each older version as "
                f"Upcast(schema_of_version_{index}, lift_to_version_{index + 1})."
            )
        if not isinstance(step.schema, Obj) or not callable(step.lift):
            raise ValueError(
                f"{where}: the upcast from version {index} needs an Obj schema (fields(...)) "
                "and a function from that version's data to the next version's data."
            )


def lift(where: str, event: Event, upcasts: Sequence[Upcast]) -> Event:
    """``event`` at the current version (``len(upcasts) + 1``), its data lifted step by step.

    An event already at the current version is returned as it is. One written by newer code
    (a version this code does not know) raises UnknownSchemaVersion; an upcaster that raises
    or returns something other than a dict raises ReplayFailed: neither can be folded here.
    """
    current = len(upcasts) + 1
    written = event.schema_version
    if written == current:
        return event
    if written > current:
        raise UnknownSchemaVersion(
            f"{where} {event.aggregate_id}: {event.type} at version {event.version} was written "
            f"with schema version {written}, but this code knows versions 1 to {current}; "
            "deploy the code that declares it before reading these events."
        )
    data: Json = dict(event.data)
    for step, upcast in enumerate(upcasts[written - 1 :], start=written):
        try:
            data = upcast.lift(data)
        except Exception as e:  # a domain's code, any error: this event cannot be read
            raise ReplayFailed(
                f"{where} {event.aggregate_id}: the upcaster of {event.type} from schema version "
                f"{step} raised {e!r} on the event at version {event.version}."
            ) from e
        if not isinstance(data, dict):
            raise ReplayFailed(
                f"{where} {event.aggregate_id}: the upcaster of {event.type} from schema version "
                f"{step} returned {type(data).__name__}; it must return the data as a dict."
            )
    return replace(event, data=data, schema_version=current)
