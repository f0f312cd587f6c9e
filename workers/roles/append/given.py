"""What the appender is given, grouped by what travels together: the stores it judges and writes
at (``AppendStores``), and how its outcomes reach the command side (``Replies``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from workers.ports import CommandMemory, EventStore, Marker, ParkedEvents, Producer, Rejections
from workers.roles.outcomes import Refused
from workers.roles.state import StateLoader


@dataclass(frozen=True, slots=True)
class AppendStores:
    """The event store and the refusals' record; what follows is optional, each with its
    fallback."""

    events: EventStore
    rejections: Rejections
    loader: StateLoader | None = None
    """Rebuilds the state at an event's predecessor: needed to judge access at the store."""
    parked: ParkedEvents | None = None
    """Queues of parked aggregates; None: a dead letter parks nothing."""
    whole_in_hot: Callable[[str], Awaitable[bool]] | None = None
    """Whether a type's hot tier holds whole histories (a new aggregate's head is then not
    read); None: the head is always read."""


@dataclass(frozen=True, slots=True)
class Replies:
    """How a refusal (or an accepted event's dead letter) is told: a reply record on the
    replies topic, rendered as the command door answers, and the command's mark repaired."""

    producer: Producer
    render: Callable[[Refused], bytes]
    marker: Marker | None = None
    memory: CommandMemory | None = None
