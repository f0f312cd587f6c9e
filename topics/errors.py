"""The one error tree of eventfleet; each class says whether a retry can help."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class EventfleetError(Exception):
    """Root of every error eventfleet raises on purpose."""

    retriable: ClassVar[bool] = False


class ConfigError(EventfleetError):
    """A setting is missing or malformed; the message names the variable."""


class InvalidInput(EventfleetError):
    """The caller sent something we will never accept, however often it is retried."""


class InvalidEnvelope(InvalidInput):
    """An event envelope failed strict decoding; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownAggregateType(InvalidInput):
    """No domain is declared for the aggregate type."""


class UnknownEventType(InvalidInput):
    """The domain declares no such event type."""


class InvalidEventData(InvalidInput):
    """The event's data does not satisfy its event type's schema."""


class TransitionRejected(EventfleetError):
    """The requested event may not follow the aggregate's current one."""

    def __init__(self, message: str, *, current: str | None, allowed: Sequence[str]) -> None:
        super().__init__(message)
        self.current = current
        self.allowed = tuple(allowed)


class ConcurrencyConflict(EventfleetError):
    """Another writer changed the aggregate first; re-read and try again."""

    retriable = True


class Unavailable(EventfleetError):
    """A dependency did not answer in time; the same call may succeed later."""

    retriable = True
    service: ClassVar[str] = "dependency"


class StoreUnavailable(Unavailable):
    """MongoDB did not answer in time."""

    service = "store"


class MarkerUnavailable(Unavailable):
    """Redis did not answer in time."""

    service = "marker"


class StreamUnavailable(Unavailable):
    """Kafka did not acknowledge in time."""

    service = "stream"


class StoreError(EventfleetError):
    """The store refused an operation for a reason a retry will not fix."""


class NotFound(EventfleetError):
    """The aggregate, snapshot or document does not exist."""
