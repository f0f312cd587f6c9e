"""Deterministic replay: fold stored events into state with a pure reducer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from topics.envelope import Event
from topics.errors import EventfleetError, ReplayFailed
from topics.jsonvalue import JsonObject

State = JsonObject
Reducer = Callable[[State | None, Event], State]


class ReplayGap(EventfleetError):
    """The events handed to replay are not contiguous; the store or a caller is broken."""


@dataclass(frozen=True, slots=True)
class Folded:
    """State after folding events up to and including ``version`` (0: nothing folded)."""

    state: State | None
    version: int


def replay(
    reducer: Reducer,
    events: Iterable[Event],
    *,
    start: Folded = Folded(None, 0),
) -> Folded:
    """Fold ``events`` (ordered, contiguous versions after ``start.version``) into state.

    The reducer must be pure: same state and event, same result. A gap or a repeated
    version raises ReplayGap rather than folding a wrong state; a reducer that raises is
    ReplayFailed, naming the event it failed on.
    """
    state, version = start.state, start.version
    for event in events:
        if event.version != version + 1:
            raise ReplayGap(
                f"{event.aggregate_type} {event.aggregate_id}: expected version {version + 1} "
                f"after {version} but got {event.version}; the event history has a gap."
            )
        try:
            state = reducer(state, event)
        except Exception as e:  # a domain's code, any error: the history cannot be folded
            raise ReplayFailed(
                f"{event.aggregate_type} {event.aggregate_id}: the reducer raised {e!r} on "
                f"{event.type} at version {event.version}; the domain cannot fold this history."
            ) from e
        version = event.version
    return Folded(state, version)
