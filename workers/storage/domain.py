"""A storage collection as a fleet domain: its events snapshot, route and replay like any other.

``storage_domain("game_states", type_prefix="GameState")`` declares the collection's
``GameStateCreated/Updated/Deleted`` events (or the names ``event_types`` gives them) so the
snapshotter, the forwarder and the query views act on them; the events its mapper derives travel
downstream as their own records. The domain is ``Mode.STORAGE``: the command path refuses appends to
it, because an event that changes no document would break the storage's one-version-one-event
promise. The replayed state of a document is what the storage holds minus ``_id`` and ``version``:
its content, or ``{"_deleted": True}`` once deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from snapshot_rules.domain import Domain, EventSpec, Mode, Retention, Route, event
from snapshot_rules.replay import State
from snapshot_rules.rules import Rule, every
from topics.envelope import Event
from workers.storage.diff import apply_patch
from workers.storage.documents import DELETED
from workers.storage.mappers import EventTypes, derived_events, storage_event_types

TOMBSTONE: State = {DELETED: True}
"""The state of a deleted document: the stored tombstone without ``_id`` and ``version``."""


@dataclass(frozen=True, slots=True)
class StorageReducer:
    """Folds a collection's stored events into the document's content by their merge patches."""

    types: EventTypes

    def __call__(self, state: State | None, event: Event) -> State:
        if event.type == self.types.deleted:
            return dict(TOMBSTONE)
        if event.type == self.types.created:
            # A creation carries the whole content, so it also revives a tombstone.
            return _object(apply_patch(event.data.get("diff"), None), state)
        if event.type == self.types.updated:
            return _object(apply_patch(event.data.get("diff"), state), state)
        return dict(state or {})  # not the storage's: leave the document as it is


def storage_domain(
    collection: str,
    *,
    type_prefix: str | None = None,
    snapshot_rule: Rule = every(50),
    routes: Sequence[Route] = (),
    mapped_types: Sequence[str] = (),
    retention: Retention | None = None,
    event_types: EventTypes | None = None,
) -> Domain:
    """The read-only domain of an EventSourcedStorage collection.

    Pass the same ``type_prefix`` (or ``event_types``) as the storage's ``ChangeEvents``.
    ``retention``: how much
    of each document's history stays hot; ``eventfleet archive`` moves the rest to the archive
    (the document's snapshot must cover it), and the storage's ``get_missing_events`` and the
    fleet's ``/events`` read both as one history. The mapper's domain events
    (``UserEmailChanged``) ride inside the one stored event as ``data.mapped``; the forwarder
    and the bridge publish them as records of their own type, so routes may name them once
    ``mapped_types`` declares them.
    """
    if retention is not None and not isinstance(retention, Retention):
        raise ValueError(
            f"{collection}: retention must be a Retention(keep_s=..., keep_last=...), not "
            f"{type(retention).__name__}."
        )
    types = storage_event_types(collection, type_prefix, event_types)
    events: dict[str, EventSpec] = {
        name: event() for name in (types.created, types.updated, types.deleted)
    }
    known = events.keys() | set(mapped_types)
    for route in routes:
        unknown = sorted((route.types or frozenset()) - known)
        if unknown:
            raise ValueError(
                f"route to {route.topic!r} names {', '.join(unknown)}, which {collection} never "
                f"stores; its events are {', '.join(events)}. A mapper's events (data.mapped) "
                "may be routed once declared: storage_domain(..., mapped_types=[...])."
            )
    return Domain(
        name=collection,
        events=events,
        reducer=StorageReducer(types),
        mode=Mode.STORAGE,
        snapshot_rule=snapshot_rule,
        routes=tuple(routes),
        derive=derived_events,
        derived_types=frozenset(mapped_types),
        retention=retention,
    )


def _object(value: object, state: State | None) -> State:
    # The storage's diffs always make an object; a foreign event that does not is ignored
    # like an unknown type, since raising would stall every replay of the document.
    return value if isinstance(value, dict) else dict(state or {})
