"""What the fleet answers, as frozen msgspec Structs decoded straight from the answer's bytes:
an append, a state, events and their pages, an outcome, an erasure, the process managers. An answer
of another shape is refused whole (``AnswerError``), never half-read; JSON inside (data, state) is
kept as parsed.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

__all__ = [
    "Appended",
    "AppendedAll",
    "AppendedEvent",
    "Erased",
    "Event",
    "EventPage",
    "GlobalEvent",
    "GlobalPage",
    "InstancePage",
    "Json",
    "JsonObject",
    "Outcome",
    "PendingDeadline",
    "ProcessInstance",
    "ProcessSummary",
    "State",
]

Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"
JsonObject: TypeAlias = "dict[str, Json]"


class Appended(msgspec.Struct, frozen=True):
    """An accepted append: ``202`` (async: Kafka has it, the store judges it next) or ``201``
    (sync: stored at ``version``). ``duplicate``: the command id was seen before, and this is
    what became of it (the same ``event_id``)."""

    event_id: str
    command_id: str = ""
    """The command id sent (made by the client unless given)."""
    stored: bool = False
    """True for a ``201`` (stored before the answer), False for a ``202`` (accepted)."""
    version: int | None = None
    partition: int | None = None
    offset: int | None = None
    duplicate: bool = False


class AppendedEvent(msgspec.Struct, frozen=True):
    """One event of an append across aggregates, stored at ``version`` of its aggregate."""

    aggregate_type: str
    aggregate_id: str
    event_id: str
    version: int


class AppendedAll(msgspec.Struct, frozen=True):
    """An append across aggregates, stored whole (``201``): every event in the request's order,
    in one transaction. ``duplicate``: the command id was seen before, and these are the events
    it stored; ``published``: on events.stored already (else the fleet's relay sends them)."""

    events: tuple[AppendedEvent, ...]
    command_id: str = ""
    """The command id sent (made by the client unless given)."""
    published: bool = True
    duplicate: bool = False


class State(msgspec.Struct, frozen=True):
    """An aggregate's state replayed at ``version``."""

    version: int
    state: dict[str, object]


class Event(msgspec.Struct, frozen=True):
    """One stored event, as ``GET .../events`` and the subscriptions give it. A module that
    ``python -m workers.client.codegen events`` wrote reads its ``data`` as a typed model."""

    id: str
    aggregate_type: str
    aggregate_id: str
    type: str
    version: int
    data: dict[str, object]
    metadata: dict[str, object]
    occurred_at: str
    """ISO-8601 in UTC, as the fleet wrote it."""
    schema_version: int = 1

    @property
    def command_id(self) -> str | None:
        found = self.metadata.get("command_id")
        return found if isinstance(found, str) else None


class EventPage(msgspec.Struct, frozen=True):
    """One page of an aggregate's events in version order; ``more``: events exist past it,
    from ``next_after_version``."""

    events: tuple[Event, ...]
    more: bool
    next_after_version: int


class GlobalPage(msgspec.Struct, frozen=True):
    """One page of the global read (``GET /v1/events``): events across aggregates in the log's
    order (each aggregate's in version order); ``positions[i]`` is the position right after
    ``events[i]``, ``next`` the one after everything the page read; ``more``: the log held
    more past it. Positions are opaque: pass them back as given."""

    events: tuple[Event, ...]
    positions: tuple[str, ...]
    more: bool
    next: str


class GlobalEvent(msgspec.Struct, frozen=True):
    """An event of the global read and the position right after it: keep ``position`` with
    what you built from ``event``, and resume there (``after=``)."""

    position: str
    event: Event


class Outcome(msgspec.Struct, frozen=True):
    """What became of a command (or event): ``stored`` (``version``), ``rejected`` (``reason``,
    ``message``), ``accepted``, ``in_progress``, ``unknown`` (it may still be stored),
    ``not_stored`` (the events topic shows that no copy landed nor can: safe to send again), or
    ``none`` (nothing is known of it: never sent here, or forgotten after the command TTL)."""

    outcome: str
    event_id: str | None = None
    command_id: str | None = None
    version: int | None = None
    reason: str | None = None
    message: str | None = None
    dead_lettered: bool = False


class Erased(msgspec.Struct, frozen=True):
    """A subject crypto-shredded: its data key destroyed, recorded as erased by ``by``."""

    subject: str
    erased_at: str
    by: str | None = None
    keys_destroyed: int = 0
    already_erased: bool = False
    unreadable_everywhere_within_s: float | None = None


class PendingDeadline(msgspec.Struct, frozen=True):
    """A deadline an instance set and that has not fired: ``due_at`` ISO-8601 in UTC; ``key``
    names its instance where a list of a process manager's deadlines gives it."""

    id: str
    name: str
    due_at: str
    data: dict[str, object] = {}
    key: str | None = None


class ProcessInstance(msgspec.Struct, frozen=True):
    """One process manager instance: ``status`` active, done, stuck or retrying; ``stuck`` says
    why it stopped (``reason``, ``detail``, ``attempts``) and what a retry runs again; ``outbox``
    holds the commands it decided and has not had answered; ``held`` the events that wait for
    its retry."""

    process: str
    key: str
    status: str
    revision: int
    state: dict[str, object] | None = None
    started_at: str | None = None
    updated_at: str | None = None
    seen: dict[str, int] = {}
    next_due: str | None = None
    deadlines: tuple[PendingDeadline, ...] = ()
    fired: tuple[dict[str, object], ...] = ()
    outbox: tuple[dict[str, object], ...] = ()
    held: tuple[dict[str, object], ...] = ()
    stuck: dict[str, object] | None = None
    retries: int = 0
    """How often an operator had it retried."""


class InstancePage(msgspec.Struct, frozen=True):
    """A page of a process manager's instances by key; ``next_after`` the key to go on after."""

    instances: tuple[ProcessInstance, ...]
    more: bool
    next_after: str | None = None


class ProcessSummary(msgspec.Struct, frozen=True):
    """A process manager: what starts, advances and ends its instances (``type.Event``), what
    it sends, its principal, and its instances by status."""

    name: str
    principal: str
    instances: dict[str, int]
    roles: tuple[str, ...] = ()
    starts_on: tuple[str, ...] = ()
    advances_on: tuple[str, ...] = ()
    ends_on: tuple[str, ...] = ()
    sends: tuple[str, ...] = ()
