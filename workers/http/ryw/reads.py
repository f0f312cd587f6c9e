"""What a read asks to see (``ReadAfter``), who waits (``Caller``), the bounds, and how a wait
ends unanswered (``NotYetStored``, ``RefusedAtStore``, ``TooManyWaiters``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

import msgspec
from msgspec import Meta

from topics.envelope import READ_VERSION_MAX, Actor
from topics.errors import EventfleetError, InvalidInput
from topics.jsonvalue import JsonObject
from workers.http.edge.params import bind_query
from workers.ports import AggregateRef, Rejection
from workers.roles.command.requests import ID_MAX

DEFAULT_WAIT_MS = 1000
MAX_WAIT_MS = 30_000
FIRST_POLL_S = 0.002
SAFETY_POLL_S = 1.0
"""How often the store is checked for an aggregate that waiters wait on (the feed wakes them
sooner; this catches a lost announcement). ``EVENTFLEET_RYW_POLL_MS``."""
MAX_WAITERS = 2000
MAX_WAITERS_PER_PRINCIPAL = 100
RETRY_AFTER_S = 1


@dataclass(frozen=True, slots=True)
class WaitBounds:
    """What bounds the reads that wait for their writes: how often the store is checked for
    them, how many may wait in a process and per principal, and the Retry-After of a read
    refused for that (``EVENTFLEET_RYW_*``)."""

    safety_poll_s: float = SAFETY_POLL_S
    max_waiters: int = MAX_WAITERS
    max_per_principal: int = MAX_WAITERS_PER_PRINCIPAL
    retry_after_s: int = RETRY_AFTER_S


SWEEP_S = 1.0
"""How often waiters whose client left are looked for (no store read)."""
CHUNK = 8
"""Aggregates checked in one store call: a large round is read in chunks, one after another,
so other requests never queue behind more than a few of its lookups."""
SAFETY_PER_TICK = 64
"""The most aggregates the safety net checks a tick: with more waited on, each in turn."""


class NotYetStored(EventfleetError):
    """What a read asked to see was not stored (or not in the view) within its ``wait_ms``."""

    retriable = True
    code = "not_yet_stored"

    def __init__(self, message: str, *, stored_version: int, wanted_version: int | None) -> None:
        super().__init__(message)
        self.stored_version = stored_version
        self.wanted_version = wanted_version

    def details(self) -> JsonObject:
        return {"stored_version": self.stored_version, "wanted_version": self.wanted_version}


class RefusedAtStore(EventfleetError):
    """The command a read waits for was refused by the store: it will never be seen."""

    code = "refused"

    def __init__(self, message: str, *, reason: str, event_id: str, command_id: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.event_id = event_id
        self.command_id = command_id

    def details(self) -> JsonObject:
        return {"reason": self.reason, "event_id": self.event_id, "command_id": self.command_id}


class TooManyWaiters(EventfleetError):
    """A read would wait past a bound of waiters; ``limit`` names which (process, principal)."""

    retriable = True
    code = "too_many_waiters"

    def __init__(self, message: str, *, limit: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_s = retry_after_s

    def details(self) -> JsonObject:
        return {"limit": self.limit, "retry_after_s": self.retry_after_s}


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Caller:
    """Who waits: the principal whose bound the wait counts against, and whether its client
    has left (a wait of a client that left is released)."""

    principal: str
    gone: Callable[[], bool] = _never


NOBODY = Caller("anonymous")
"""The caller of a waiter no request was named for (the CLI, a test)."""


class ReadAfterQuery(msgspec.Struct, forbid_unknown_fields=False):
    """The read-your-writes parameters of a read route, declared once for every route."""

    min_version: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=READ_VERSION_MAX,
                description=(
                    "Answer once the aggregate's version N is stored (your write's version)."
                ),
            ),
        ]
        | None
    ) = None
    command_id: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=ID_MAX,
                description=("Answer once the event of your command with this id is stored."),
            ),
        ]
        | None
    ) = None
    wait_ms: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=MAX_WAIT_MS,
                description=(f"How long to wait for it (default {DEFAULT_WAIT_MS})."),
            ),
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        if self.min_version is not None and self.command_id is not None:
            raise InvalidInput("give min_version or command_id, not both.")
        if self.min_version is None and self.command_id is None and self.wait_ms is not None:
            raise InvalidInput(
                "wait_ms bounds a wait for min_version=N or command_id=C; give one of them."
            )


@dataclass(frozen=True, slots=True)
class ReadAfter:
    """What a read must see: a version (``min_version``) or a command's event, within a bound."""

    min_version: int | None
    command_id: str | None
    wait_ms: int
    actor: Actor | None = None
    """Who reads: a ``command_id`` is theirs (``command_scope``), as on the append."""

    @classmethod
    def of(cls, query: ReadAfterQuery, actor: Actor | None = None) -> ReadAfter | None:
        """What ``query`` asks to see; None when it asks for nothing."""
        if query.min_version is None and query.command_id is None:
            return None
        wait_ms = DEFAULT_WAIT_MS if query.wait_ms is None else query.wait_ms
        return cls(query.min_version, query.command_id, wait_ms, actor)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ReadAfter | None:
        """From a query string; None when it asks for nothing. Malformed: ``InvalidInput``."""
        return cls.of(bind_query(ReadAfterQuery, query))


def refused_at_store(
    ref: AggregateRef, command_id: str, event_id: str, refused: Rejection
) -> RefusedAtStore:
    return RefusedAtStore(
        f"{ref[0]} {ref[1]}: command {command_id} was refused by the store "
        f"({refused.reason}): {refused.message}",
        reason=refused.reason,
        event_id=event_id,
        command_id=command_id,
    )
