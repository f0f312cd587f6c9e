"""What operators and callers ask after: events the store refused, aggregates parked by the
appender, and the audit trail of operator actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from topics.errors import InvalidInput
from topics.jsonvalue import Json
from workers.ports.stream import Record


@dataclass(frozen=True, slots=True)
class Rejection:
    """An accepted event the store refused: why, for the caller who asks by id."""

    event_id: str
    aggregate_type: str
    aggregate_id: str
    event_type: str
    reason: str  # one of STORE_VERDICTS, or the reason a copy of it was dead-lettered
    message: str
    command_id: str | None
    rejected_at: datetime
    current_version: int | None = None
    """``wrong_expected_version``: the version the store found the aggregate at."""


STORE_VERDICTS = frozenset(
    ("transition_rejected_at_store", "forbidden_at_store", "invalid_data", "wrong_expected_version")
)
"""Reasons the store's judge refuses an event with. Any other reason a Rejection carries is the
fate of a dead-lettered copy (``workers.roles.append.fates``): no verdict on the event itself."""


class Rejections(Protocol):
    """Events the appender refused, by event id; an event stored later takes precedence."""

    async def record(self, rejections: Sequence[Rejection]) -> None:
        """Keep these (idempotent by event id: the first record stays), except that a verdict
        (a reason in STORE_VERDICTS) replaces a dead-lettered copy's fate."""
        ...

    async def find(self, event_ids: Sequence[str]) -> dict[str, Rejection]: ...


PARKED = "parked"
"""The reason of a parked entry that is fine itself: it waits behind its aggregate's head."""


@dataclass(frozen=True, slots=True)
class ParkedEntry:
    """One event of a parked aggregate: it waits, in ``seq`` order, behind the head of its queue
    (the entry with the lowest ``seq``: the event that could not be stored)."""

    key: str  # "<aggregate_type>:<aggregate_id>"
    seq: int  # 1, 2, ... per aggregate: the order its entries are released in
    record: Record  # as it was taken from the events topic: what is judged when released
    reason: str  # the head's problem (a dead-letter reason); PARKED for one waiting behind it
    detail: str
    event_id: str | None  # None: the bytes are no envelope
    parked_at: datetime
    resolution: str | None = None  # on the head: "skip" or "replay" (an operator's decision)
    by: str | None = None  # "replay": the replacement event's id; "skip": the operator

    @property
    def source(self) -> str:
        """The entry's identity: where its record sits, ``<topic>/<partition>/<offset>``."""
        return f"{self.record.topic}/{self.record.partition}/{self.record.offset}"

    @property
    def replay_command_id(self) -> str:
        """The command id a replay of this entry carries (``DeadLetterEntry.command_id``)."""
        return f"dlq-replay:{self.event_id or self.source}"


def check_head(head: ParkedEntry, seq: int) -> None:
    """InvalidInput unless ``seq`` names the head of its queue."""
    if seq != head.seq:
        raise InvalidInput(
            f"entry {seq} of {head.key} waits behind the head of its queue (entry {head.seq}, "
            f"{head.reason}); replay or skip the head first: the rest is then released in order."
        )


class ParkedEvents(Protocol):
    """Aggregates parked by the appender, each with its queue (kept next to the event store)."""

    async def park(self, entries: Sequence[ParkedEntry]) -> None:
        """Keep these (idempotent by source: an entry parked before keeps its first seq)."""
        ...

    async def sources(self, sources: Sequence[str]) -> set[str]:
        """Which of these records (by source) are parked."""
        ...

    async def heads(self, keys: Sequence[str] | None = None) -> dict[str, tuple[ParkedEntry, int]]:
        """Per parked aggregate among ``keys`` (None: all): its head and its highest seq."""
        ...

    async def queue(self, key: str, *, limit: int) -> list[ParkedEntry]:
        """The first ``limit`` entries of an aggregate's queue, in seq order."""
        ...

    async def resolve(self, key: str, seq: int, resolution: str, by: str) -> ParkedEntry:
        """Set the head's resolution, once: the head as it is now (its first resolution stays).
        InvalidInput when ``seq`` is not the head's, NotFound when the aggregate has no entry."""
        ...

    async def relabel(self, source: str, reason: str, detail: str) -> None:
        """A parked entry found unfit when released: it heads its queue with this reason now."""
        ...

    async def remove(self, sources: Sequence[str]) -> None:
        """Drop released entries (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """One confirmed operator action: who did what, when, to which dead letter, and the result."""

    id: str
    at: datetime
    operator: str
    via: str  # console or cli
    action: str  # dlq_replay
    target: str  # the dead letter's position: "<partition>/<offset>" in the DLQ topic
    submitted: Mapping[str, Json]  # exactly what was re-submitted
    status: int  # the command path's HTTP-like status
    result: Mapping[str, Json]  # the command path's answer body


class Told(Protocol):
    """What an operator was told of an action, as its audit record keeps it
    (``OperatorAction.status``, ``result``): the runtime renders an outcome into it, so role
    logic hands it to the trail without knowing statuses."""

    @property
    def status(self) -> int: ...

    @property
    def body(self) -> Mapping[str, Json]: ...


@dataclass(frozen=True, slots=True)
class ReplayClaim:
    """The first replay of one dead letter: a dead letter's identity is its entry, so every
    later replay of it is held against this one (the same submission: the same command, stored
    once; another one: refused)."""

    target: str  # the entry's position in the dead-letter topic: "<partition>/<offset>"
    submitted: Mapping[str, Json]  # exactly what the first replay re-submits
    operator: str
    at: datetime
    status: int | None = None  # the first replay's answer, once it has one
    result: Mapping[str, Json] | None = None


class ActionLog(Protocol):
    """The operator audit trail: append-only, newest first when read; and the first replay of
    each dead letter, claimed atomically."""

    async def record(self, action: OperatorAction) -> None:
        """Keep this action (idempotent by its id)."""
        ...

    async def recent(self, *, limit: int) -> list[OperatorAction]:
        """The newest ``limit`` actions, newest first."""
        ...

    async def claim_replay(self, claim: ReplayClaim) -> ReplayClaim | None:
        """Make ``claim`` the first replay of its target: None if it is now; else the first
        one (of any process, at any time before)."""
        ...

    async def settle_replay(self, target: str, status: int, result: Mapping[str, Json]) -> None:
        """Keep the first replay's answer with its claim."""
        ...

    async def abandon_replay(self, claim: ReplayClaim) -> None:
        """The first replay wrote nothing (refused, or nothing sent): the entry may be
        replayed again, with a corrected fix. Only this claim is removed."""
        ...
