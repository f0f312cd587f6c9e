"""The one error tree of eventfleet; each class says whether a retry can help, and how a
caller is told of it.

How a caller is told is data on the class, read by one mapping wherever an error is answered
(``workers.runtime.answers.failure`` over HTTP, the command side's outcomes): ``code``, one of
the registered error codes, and ``details()``, the answer's fields beside ``error`` and
``message``. The status is the code's own in the one registry, the documented table
(``workers.runtime.answers.ERROR_CODES``: statuses are the runtime's; a unit test checks that
every class's code is registered). A subclass that says nothing is answered as its parent is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from topics.jsonvalue import JsonObject


class EventfleetError(Exception):
    """Root of every error eventfleet raises on purpose; one no subclass names a code for is
    the fleet's own fault when it reaches a caller: ``internal``."""

    retriable: ClassVar[bool] = False
    code: ClassVar[str] = "internal"

    def details(self) -> JsonObject:
        """The answer's fields beside ``error`` and ``message`` (none unless a class adds some)."""
        return {}


class ConfigError(EventfleetError):
    """A setting is missing or malformed; the message names the variable."""


class TopicsNotReady(EventfleetError):
    """The topics a worker needs are missing or differ from the catalog; the message says how
    to create or grow them. The cluster's state, not the caller's command line: exit code 1."""


class InvalidInput(EventfleetError):
    """The caller sent something we will never accept, however often it is retried."""

    code = "bad_request"


class InvalidEnvelope(InvalidInput):
    """An event envelope failed strict decoding; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownAggregateType(InvalidInput):
    """No domain is declared for the aggregate type."""

    code = "unknown_aggregate_type"


class UnknownProjection(InvalidInput):
    """No enabled domain declares a projection of that name."""


class UnknownEventType(InvalidInput):
    """The domain declares no such event type."""

    code = "unknown_event_type"


class InvalidEventData(InvalidInput):
    """The event's data does not satisfy its event type's schema (or a number in it does not
    fit 64 bits)."""

    code = "invalid_data"


class ValueOutOfRange(InvalidEnvelope):
    """A number in the data does not fit a 64-bit integer (the store's and JSON peers' limit)."""


class TransitionRejected(EventfleetError):
    """The requested event may not follow the aggregate's current one."""

    code = "transition_rejected"

    def __init__(self, message: str, *, current: str | None, allowed: Sequence[str]) -> None:
        super().__init__(message)
        self.current = current
        self.allowed = tuple(allowed)

    def details(self) -> JsonObject:
        """``current``, and ``allowed`` when a declared transition refused it (a state's own
        rule cannot say which types would pass)."""
        found: JsonObject = {"current": self.current}
        if self.allowed:
            found["allowed"] = list(self.allowed)
        return found


class WrongExpectedVersion(EventfleetError):
    """The request expected the aggregate at ``expected`` and it is at ``current``: another
    writer appended first (or the aggregate exists, or does not yet). Nothing was written; a
    retry of the same request is refused again: read the aggregate again and decide again."""

    code = "wrong_expected_version"

    def __init__(self, aggregate: str, *, expected: int, current: int) -> None:
        super().__init__(expectation_message(aggregate, expected=expected, current=current))
        self.aggregate = aggregate
        self.expected = expected
        self.current = current

    def details(self) -> JsonObject:
        return {"current_version": self.current, "expected_version": self.expected}


def expectation_message(aggregate: str, *, expected: int, current: int) -> str:
    """The sentence a stale expectation is refused with, wherever it is judged: ``aggregate``
    is ``<type> <id>``."""
    if expected == 0:
        found = f"{aggregate} exists already (version {current})"
        wanted = "expected_version 0 means it must not exist yet"
    elif current == 0:
        found = f"{aggregate} does not exist yet (version 0)"
        wanted = f"the request expected version {expected}"
    elif current < expected:
        found = f"{aggregate} is at version {current}, not yet at the expected {expected}"
        wanted = "versions count the stored events"
    else:
        found = f"{aggregate} is at version {current}, not at the expected {expected}"
        wanted = "another writer appended first"
    return f"{found}; {wanted}. Nothing was written: read it again and decide again."


class CommandReused(EventfleetError):
    """A command id came back for other work: some of the events it names are stored (by an
    earlier request with that id, for other aggregates) and some are not. Nothing was written;
    a retry sends exactly what was sent before, new work a new command id."""

    code = "command_reused"


class ConcurrencyConflict(EventfleetError):
    """Another writer changed the aggregate first; re-read and try again."""

    retriable = True
    code = "conflict"


class Unavailable(EventfleetError):
    """A dependency did not answer in time; the same call may succeed later. ``service`` names
    it (a metric label); ``code`` is ``<service>_unavailable`` for the registered services."""

    retriable = True
    service: ClassVar[str] = "dependency"
    code = "dependency_unavailable"


class StoreUnavailable(Unavailable):
    """MongoDB did not answer in time."""

    service = "store"
    code = "store_unavailable"


class MarkerUnavailable(Unavailable):
    """Redis did not answer in time."""

    service = "marker"
    code = "marker_unavailable"


class StreamUnavailable(Unavailable):
    """Kafka did not acknowledge in time; nothing was handed to it, or what was is lost."""

    service = "stream"
    code = "stream_unavailable"


class OutcomeUnknown(Unavailable):
    """A write was sent but no answer came: it may or may not take effect.

    Retrying with the same ids is safe (the store deduplicates by event id); answering
    "nothing was written" would not be true.
    """


class StreamOutcomeUnknown(StreamUnavailable, OutcomeUnknown):
    """A record was sent to Kafka but not acknowledged in time: it may still be appended."""


class StoreOutcomeUnknown(StoreUnavailable, OutcomeUnknown):
    """A write was sent to MongoDB but not answered in time: it may have been applied."""


class Unstorable(EventfleetError):
    """A value does not fit where it goes (a BSON int64, a 16 MB document): no retry helps."""


class ReplayFailed(EventfleetError):
    """A domain's reducer or projection raised while folding one aggregate's history."""

    code = "replay_failed"


class UnknownSchemaVersion(ReplayFailed):
    """An event was written with a schema version newer than this code declares."""


class StoreError(EventfleetError):
    """The store refused an operation for a reason a retry will not fix."""


class TransactionsUnsupported(EventfleetError):
    """The store runs no multi-document transactions (a standalone mongod): what must be stored
    all or none across aggregates is refused before anything is sent, never stored in part."""

    code = "transactions_unsupported"


class NotFound(EventfleetError):
    """The aggregate, snapshot or document does not exist."""

    code = "not_found"


class HistoryGone(NotFound):
    """Versions a read needs are stored nowhere any more (an archive that lost them, or was
    dropped): the read says so instead of skipping them. ``after_version`` is where the reader
    asked to start; ``whole_from`` the earliest version the store can serve from without a hole
    (read on after ``whole_from - 1``)."""

    code = "history_compacted"

    def __init__(self, message: str, *, after_version: int, whole_from: int) -> None:
        super().__init__(message)
        self.after_version = after_version
        self.whole_from = whole_from

    def details(self) -> JsonObject:
        return {"whole_from": self.whole_from, "after_version": self.after_version}


class PositionOutdated(EventfleetError):
    """A position into the stored-event log that the log cannot continue from any more: it
    counts another number of partitions (the topic was repartitioned, so aggregates moved), or
    names offsets the log no longer holds (before a partition's first kept record, or past its
    end: records deleted, or the topic recreated). Reading on would skip or repeat events
    silently; the reader starts again from the beginning, and rebuilds what it built."""

    code = "position_outdated"


class Unauthenticated(EventfleetError):
    """The request names no principal the fleet can verify; ``reason`` is one short word."""

    code = "unauthenticated"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def details(self) -> JsonObject:
        return {"reason": self.reason}


class Forbidden(EventfleetError):
    """The authenticated principal may not do this: the domain's or the console's rule says no.

    ``reason`` is one short word (``not_your_message``, ``role_required``, ...).
    """

    code = "forbidden"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def details(self) -> JsonObject:
        return {"reason": self.reason}


class OverLimit(EventfleetError):
    """A caller (or the fleet as a whole) is over one of its limits: nothing was done, and the
    same call may pass after ``retry_after_s``. ``limit`` says which one (``principal``,
    ``fleet``). Each limit's subclass names its code (``too_many_...``); the edge sends
    ``Retry-After`` from ``retry_after_s``."""

    retriable = True

    def __init__(self, message: str, *, limit: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_s = retry_after_s

    def details(self) -> JsonObject:
        return {"limit": self.limit, "retry_after_s": self.retry_after_s}


class TooManyTickets(OverLimit):
    """No ticket was issued: its principal holds its share of tickets, or the fleet its total."""

    code = "too_many_tickets"
