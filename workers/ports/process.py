"""Process manager instances: each one's state, with the commands it decided and has not sent
yet, its pending deadlines and what it holds while stuck, written together or not at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from topics.jsonvalue import JsonObject

ACTIVE, DONE, STUCK, RETRYING = "active", "done", "stuck", "retrying"
STATUSES = (ACTIVE, DONE, STUCK, RETRYING)
"""``retrying``: an operator asked for a stuck instance to be tried again; the role does it."""


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A command an instance decided: sent (again) until the command door answers it."""

    command_id: str
    aggregate_type: str
    aggregate_id: str
    type: str
    data: JsonObject
    causation_id: str
    """The id of what it reacted to: the event, or the deadline."""
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Deadline:
    """A pending deadline of an instance."""

    id: str
    name: str
    due_at: datetime
    data: JsonObject = field(default_factory=dict)
    correlation_id: str | None = None
    """The conversation of what set it: the commands it leads to carry it on."""


@dataclass(frozen=True, slots=True)
class Fired:
    """A deadline that fired: when it was due, and when it fired (the last few are kept)."""

    id: str
    name: str
    due_at: datetime
    fired_at: datetime


@dataclass(frozen=True, slots=True)
class Trigger:
    """What an instance reacted to: a stored event (its envelope's bytes) or a deadline."""

    event: bytes | None = None
    deadline: Deadline | None = None


@dataclass(frozen=True, slots=True)
class Stuck:
    """Why an instance stopped, and what a retry runs again: the ``trigger`` whose reaction
    failed, or (None) the first command of its outbox, which the command door refused."""

    reason: str
    detail: str
    at: datetime
    trigger: Trigger | None = None
    attempts: int = 1
    """1 for the first stop, 2 for a stop after one retry, ..."""
    resume: str = ACTIVE
    """The status a retry that succeeds returns it to (``done``: it had ended, a command of
    its last reaction was refused)."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of a process manager, keyed by ``(process, key)``; ``revision`` counts its
    writes (1: the first)."""

    process: str
    key: str
    revision: int
    status: str
    state: JsonObject | None
    started_at: datetime
    updated_at: datetime
    seen: Mapping[str, int] = field(default_factory=dict)
    """Per aggregate key, the last version it reacted to: a copy at or below it is skipped."""
    outbox: tuple[PendingCommand, ...] = ()
    unsent_since: datetime | None = None
    """When its outbox became non-empty (None: empty)."""
    deadlines: tuple[Deadline, ...] = ()
    fired: tuple[Fired, ...] = ()
    held: tuple[bytes, ...] = ()
    """Events that came while it was stuck, in arrival order: reacted to after a retry."""
    stuck: Stuck | None = None
    retries: int = 0
    """How often an operator had it retried (a stop after them is attempt ``retries + 1``)."""

    @property
    def next_due(self) -> datetime | None:
        """When its next deadline is due; None when none is pending or it is not active."""
        if self.status != ACTIVE or not self.deadlines:
            return None
        return min(d.due_at for d in self.deadlines)


class ProcessInstances(Protocol):
    """The instances of every process manager; each write is one instance, whole, conditional
    on its revision, so two processes (or a redelivery) never both apply a change."""

    async def load(self, process: str, keys: Sequence[str]) -> dict[str, Instance]:
        """The stored instances of ``keys`` (absent: none)."""
        ...

    async def save(self, instance: Instance) -> bool:
        """Write ``instance`` if the stored one is at revision ``instance.revision - 1`` (none
        stored for revision 1); False when another writer moved it first (nothing written).
        Raises StoreUnavailable, StoreOutcomeUnknown (the write may have happened: load and
        see), Unstorable (a state over 16 MB)."""
        ...

    async def save_many(self, instances: Sequence[Instance], *, durable: bool = True) -> list[bool]:
        """``save`` for each of ``instances`` (one per instance id) in one round trip, in any
        order; for each, whether it was written (False: another writer moved it first).
        ``durable=False``: acknowledged before it is journaled, so a crash of the store may lose
        it (for a write that only spares work done again, such as dropping answered commands)."""
        ...

    async def due(self, now: datetime, *, limit: int) -> list[Instance]:
        """Active instances of any process with a deadline due at ``now``, soonest first."""
        ...

    async def retrying(self, *, limit: int) -> list[Instance]:
        """Instances an operator asked to retry (status ``retrying``), of any process."""
        ...

    async def unsent(self, before: datetime, *, limit: int) -> list[Instance]:
        """Instances (not stuck) whose outbox has waited since before ``before``, oldest first."""
        ...

    async def page(
        self, process: str, *, status: str | None = None, after: str | None = None, limit: int
    ) -> list[Instance]:
        """``process``'s instances (of ``status``, if given) by key, the first after ``after``."""
        ...

    async def upcoming(self, process: str, *, limit: int) -> list[Instance]:
        """``process``'s active instances with a pending deadline, the soonest due first."""
        ...

    async def counts(self, process: str) -> dict[str, int]:
        """``process``'s instances by status (every status, 0 included)."""
        ...
