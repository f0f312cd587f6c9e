"""What a request's handling raises that its caller is told, and the outcome it is told: one
translation for the single append's door and the append across aggregates.

The error says its own code and fields (``topics.errors``): a refusal is told as them; a
dependency that did not answer as "nothing was written, retry", under its service's code.
"""

from __future__ import annotations

from topics.errors import (
    ConcurrencyConflict,
    EventfleetError,
    Forbidden,
    InvalidEventData,
    ReplayFailed,
    TransitionRejected,
    Unavailable,
    UnknownAggregateType,
    UnknownEventType,
    WrongExpectedVersion,
)
from workers.roles.outcomes import NotDone, Refused

ANSWERED = (
    UnknownAggregateType,
    UnknownEventType,
    Forbidden,
    InvalidEventData,
    TransitionRejected,
    ConcurrencyConflict,
    Unavailable,
    ReplayFailed,
    WrongExpectedVersion,
)
"""What a request's handling raises that its caller is told as an outcome."""


def outcome_of(e: EventfleetError) -> Refused | NotDone:
    """The outcome a caller is told for one of ``ANSWERED`` (or another error that says its
    own code): NotDone for a dependency that did not answer, else its refusal."""
    if isinstance(e, Unavailable):
        return NotDone(e.code, f"{e} Nothing was written; retry.", e.service)
    return refused(e)


def refused(e: EventfleetError) -> Refused:
    """``e`` as a refusal: its code, its message, its fields (``current_version`` and
    ``expected_version`` of a stale expectation, ``current`` and ``allowed`` of a refused
    transition, ``reason`` of a forbidden one)."""
    return Refused(e.code, str(e), e.details())
