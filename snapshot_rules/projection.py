"""Projections: read models a domain declares, folded by a pure function and guarded by version.

A view document holds one aggregate's view plus the last version folded into it, so a
redelivered event (version <= applied) changes nothing. ``generation`` names the rebuild
that produced the document; writers guard on (version, generation), so a writer that read a
document before a rebuild swapped the views cannot overwrite the rebuilt one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from topics.envelope import Event
from topics.errors import ReplayFailed
from topics.jsonvalue import JsonObject

View = JsonObject
Apply = Callable[[View | None, Event], View]

LIVE = "live"
"""Generation of view documents created by live application before any rebuild."""


@dataclass(frozen=True, slots=True)
class Projection:
    """A read model in ``collection``: one view per aggregate, folded by the pure ``apply``."""

    name: str
    collection: str
    aggregate_types: frozenset[str]
    apply: Apply

    def wants(self, event: Event) -> bool:
        return event.aggregate_type in self.aggregate_types


@dataclass(frozen=True, slots=True)
class ViewDoc:
    """One aggregate's view in a projection and the last event version folded into it."""

    aggregate_type: str
    aggregate_id: str
    version: int
    view: View
    generation: str = LIVE

    @property
    def ref(self) -> tuple[str, str]:
        return (self.aggregate_type, self.aggregate_id)


@dataclass(frozen=True, slots=True)
class Advanced:
    """What ``advance`` did: the new document (None: unchanged) and what it applied or skipped."""

    doc: ViewDoc | None
    applied: int
    skipped: int
    gap: bool  # an event after a missing version was met; read the missing ones from the store


def advance(projection: Projection, doc: ViewDoc | None, events: Iterable[Event]) -> Advanced:
    """Fold one aggregate's stored events (in version order) into its view document.

    An event at or below the applied version is skipped (redelivery); folding stops at the
    first event that is not the next version, and ``gap`` says so.
    """
    current, applied, skipped = doc, 0, 0
    for event in events:
        version = current.version if current else 0
        if event.version is None or event.version <= version:
            skipped += 1
            continue
        if event.version != version + 1:
            return Advanced(current if applied else None, applied, skipped, gap=True)
        try:
            view = projection.apply(current.view if current else None, event)
        except Exception as e:  # a domain's code, any error: this view cannot be folded
            raise ReplayFailed(
                f"{event.aggregate_type} {event.aggregate_id}: projection {projection.name} "
                f"raised {e!r} on {event.type} at version {event.version}."
            ) from e
        generation = current.generation if current else LIVE
        current = ViewDoc(event.aggregate_type, event.aggregate_id, event.version, view, generation)
        applied += 1
    return Advanced(current if applied else None, applied, skipped, gap=False)
