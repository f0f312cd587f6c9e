"""What a request's handling raises that its caller is told, and the outcome it is told: one
translation for the single append's door and the append across aggregates."""

from __future__ import annotations

from topics.errors import (
    ConcurrencyConflict,
    Forbidden,
    InvalidEventData,
    ReplayFailed,
    TransitionRejected,
    Unavailable,
    UnknownAggregateType,
    UnknownEventType,
    WrongExpectedVersion,
)
from workers.roles.command.refusals import expectation_refused, transition_refused
from workers.roles.outcomes import NotDone, Outcome, Refused

ANSWERED = (
    UnknownAggregateType, UnknownEventType, Forbidden, InvalidEventData, TransitionRejected,
    ConcurrencyConflict, Unavailable, ReplayFailed, WrongExpectedVersion,
)  # fmt: skip
"""What a request's handling raises that its caller is told as an outcome."""


def outcome_of(e: Exception) -> Outcome:
    """The outcome a caller is told for one of ``ANSWERED``."""
    if isinstance(e, UnknownAggregateType):
        return Refused("unknown_aggregate_type", str(e))
    if isinstance(e, UnknownEventType):
        return Refused("unknown_event_type", str(e))
    if isinstance(e, Forbidden):
        return Refused("forbidden", str(e), {"reason": e.reason})
    if isinstance(e, InvalidEventData):
        return Refused("invalid_data", str(e))
    if isinstance(e, TransitionRejected):
        return transition_refused(e)
    if isinstance(e, WrongExpectedVersion):
        return expectation_refused(e)
    if isinstance(e, ConcurrencyConflict):
        return Refused("conflict", str(e))
    if isinstance(e, Unavailable):
        return NotDone(f"{e.service}_unavailable", f"{e} Nothing was written; retry.", e.service)
    assert isinstance(e, ReplayFailed)
    return Refused("replay_failed", str(e))
