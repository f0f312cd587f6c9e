"""Poison input goes to the dead-letter topic with its reason and original bytes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from snapshot_rules.personal import SUBJECT_MAX, nameable
from topics.envelope import Event, decode
from topics.errors import InvalidEnvelope, InvalidInput
from workers import tracing
from workers.metrics import Metrics
from workers.ports import Outgoing, Producer, Record

log = logging.getLogger(__name__)

MAX_OPERATOR = SUBJECT_MAX
"""The longest operator name recorded in the operator trail (who replays a dead letter, retries
a stuck process instance, erases a subject): typed where the door is open, else the principal,
which the door takes by the same rule (``nameable``)."""


def check_operator(operator: str, acts: str = "replays") -> str:
    """The operator's name, stripped: 1 to MAX_OPERATOR printable characters, else InvalidInput
    saying so and who the name is (the one who ``acts``)."""
    name = operator.strip()
    if not nameable(name):
        raise InvalidInput(
            f"the operator name must be 1 to {MAX_OPERATOR} printable characters: who {acts}."
        )
    return name


REASONS = frozenset(
    (
        "undecodable",
        "oversized",
        "unknown_aggregate_type",
        "unknown_event_type",
        "invalid",
        "already_versioned",
        "unknown_schema_version",  # written by newer code than the appender runs
        "handler_failed",  # the durable event buses, after their retry bound
        "transition_rejected_at_store",  # the store is the judge
        "forbidden_at_store",  # its actor may not send it (the domain's access rules)
        "wrong_expected_version",  # the store's head is not at the version it expected
        "invalid_data",
        "snapshot_failed",  # the reducer or the store cannot take this aggregate's state
        "projection_failed",
        "upcast_failed",  # a declared upcaster raised: the event cannot be read as current
        "parked",  # fine itself: it waits behind its aggregate's parked head (workers.ports)
        "process_stuck",  # a process manager's instance stopped on it (workers.roles.process)
        "process_unkeyed",  # a process manager's key function could not key it
    )
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record we will never process, and why."""

    record: Record
    reason: str  # one of REASONS: bounded, so it can be a metric label
    detail: str
    parked: tuple[str, int] | None = None
    """(aggregate key, seq) when the letter is an entry of a parked aggregate's queue."""


class DeadLetters:
    """Produces dead letters (original key, value and headers plus the reason) to the DLQ."""

    def __init__(self, producer: Producer, *, topic: str, role: str, metrics: Metrics) -> None:
        self._producer = producer
        self._topic = topic
        self._role = role
        self._metrics = metrics

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Produce and wait for every ack; raises StreamUnavailable so the batch is retried."""
        messages = []
        for letter in letters:
            record = letter.record
            headers = [
                *record.headers,
                ("dlq_reason", letter.reason.encode()),
                ("dlq_detail", letter.detail.encode()[:1000]),
                ("dlq_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
                ("dlq_role", self._role.encode()),
            ]
            if letter.parked is not None:  # the sequenced stream of one parked aggregate
                headers += [
                    ("dlq_parked", letter.parked[0].encode()),
                    ("dlq_park_seq", str(letter.parked[1]).encode()),
                ]
            messages.append(Outgoing(record.key, record.value, headers))
        await self._producer.send_many(self._topic, messages)
        for letter in letters:
            self._metrics.dead_lettered.labels(self._role, letter.reason).inc()
            self._told(letter)

    def _told(self, letter: DeadLetter) -> None:
        """One log line a dead letter; traced, written inside a failed span of its own (the
        child of the record's context) whose status names the reason."""
        r = letter.record
        source = f"{r.topic}/{r.partition}/{r.offset}"
        attributes = {"eventfleet.dlq_source": source, "eventfleet.role": self._role}
        with tracing.span(
            f"{self._role} dead letter", parent=r.headers, attributes=attributes
        ) as s:
            tracing.fail(s, letter.reason, letter.detail)
            log.info("%s dead-lettered %s: %s", self._role, source, letter.reason)


def decode_record(record: Record, *, max_event_bytes: int) -> Event | DeadLetter:
    """A record's event, or the dead letter for bytes that cannot be one (too big, not an
    envelope)."""
    if len(record.value) > max_event_bytes:
        return DeadLetter(record, "oversized", f"{len(record.value)} bytes > {max_event_bytes}")
    try:
        return decode(record.value)
    except InvalidEnvelope as e:
        return DeadLetter(record, "undecodable", str(e))


def decode_stored(
    records: Sequence[Record], *, max_event_bytes: int
) -> tuple[list[tuple[Event, Record]], list[DeadLetter]]:
    """Decode ``events.stored`` records; what cannot be a stored event becomes a dead letter."""
    decoded: list[tuple[Event, Record]] = []
    letters: list[DeadLetter] = []
    for record in records:
        event = decode_record(record, max_event_bytes=max_event_bytes)
        if isinstance(event, DeadLetter):
            letters.append(event)
        elif event.version is None:
            letters.append(DeadLetter(record, "invalid", "a stored event must carry a version"))
        else:
            decoded.append((event, record))
    return decoded, letters
