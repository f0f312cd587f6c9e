"""What the appender takes from a batch: dead letters, invalid data, events to judge, copies.

Decoding and the checks that need no store: a record that cannot be read, or names no async
domain, event type or schema version this appender knows, is a dead letter; an event whose
data does not fit its schema is refused (``invalid_data``); a further record of an event that
waits here already is held with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from snapshot_rules.domain import Domains, Mode
from topics.envelope import Event, control_character, decode
from topics.errors import InvalidEnvelope, InvalidEventData, ReplayFailed
from workers import tracing
from workers.metrics import Metrics
from workers.ports import Record
from workers.roles.append.book import AppenderConfig, Book
from workers.roles.append.judge import INVALID_DATA, Refusal, Waiting
from workers.roles.deadletter import DeadLetter, decode_record


@dataclass(frozen=True, slots=True)
class Taken:
    """One batch sorted: dead letters, refusals (invalid data), events to judge, copies."""

    letters: list[DeadLetter]
    refused: list[Refusal]
    fresh: list[tuple[Event, Record]]
    copies: list[tuple[Event, Record]]


class Intake:
    """Decodes and checks records against the domains and what waits in the ``Book``."""

    def __init__(
        self, *, book: Book, domains: Domains, metrics: Metrics, config: AppenderConfig
    ) -> None:
        self._book = book
        self._domains = domains
        self._metrics = metrics
        self._config = config

    def take(self, records: Sequence[Record]) -> Taken:
        """Dead letters, refusals (invalid data), events to judge, and further records of events
        waiting here (held with them, decided with them). A record already waiting here (the
        same batch again, after an error) stays where it is."""
        letters: list[DeadLetter] = []
        refusals: dict[str, Refusal] = {}
        fresh: dict[str, tuple[Event, Record]] = {}
        copies: list[tuple[Event, Record]] = []
        for record in records:
            event = decode_record(record, max_event_bytes=self._config.max_event_bytes)
            if isinstance(event, DeadLetter):
                letters.append(event)
                continue
            problem = self.check(event)
            if problem is not None:
                letters.append(DeadLetter(record, *problem))
                continue
            if tracing.enabled() and event.metadata.trace_id is None:
                event = with_trace_id(event, record)
            held = self._held(event, record)
            if held is not None or event.id in fresh:
                if held != "this record":
                    self._metrics.duplicates_dropped.inc()
                copies.append((event, record))
            elif event.id in refusals:  # a copy of an invalid event: refused with it
                first = refusals[event.id]
                waiting = replace(first.waiting, copies=(*first.waiting.copies, record))
                refusals[event.id] = replace(first, waiting=waiting)
            else:
                try:
                    # Stored as requested; judged as written and as the current schema version.
                    self._domains.get(event.aggregate_type).check_as_written(event)
                except (InvalidEventData, ReplayFailed) as e:
                    refusals[event.id] = Refusal(Waiting(event, record, 0.0), INVALID_DATA, str(e))
                    continue
                fresh[event.id] = (event, record)
        return Taken(letters, list(refusals.values()), list(fresh.values()), copies)

    def _held(self, event: Event, record: Record) -> str | None:
        """Whether this very record, or another record of its event, waits here already."""
        for w in self._book.queue_of((event.aggregate_type, event.aggregate_id)):
            if w.event.id == event.id:
                at = (record.partition, record.offset)
                mine = any((r.partition, r.offset) == at for r in w.records)
                return "this record" if mine else "its event"
        return None

    def parkable_key(self, letter: DeadLetter) -> str | None:
        """The aggregate a dead letter parks (from its record's key): one of an async domain."""
        raw = letter.record.key
        if raw is None:
            return None
        try:
            key = raw.decode()
        except UnicodeDecodeError:
            return None
        aggregate_type, sep, aggregate_id = key.partition(":")
        if not sep or not aggregate_id or aggregate_type not in self._domains:
            return None
        return key if self._domains.get(aggregate_type).mode is Mode.ASYNC else None

    def check(self, event: Event) -> tuple[str, str] | None:
        """Why this appender cannot take ``event`` (a dead letter's reason and detail), or None."""
        if event.aggregate_type not in self._domains:
            return "unknown_aggregate_type", f"no domain {event.aggregate_type!r}"
        domain = self._domains.get(event.aggregate_type)
        if domain.mode is not Mode.ASYNC:
            writer = "EventSourcedStorage" if domain.mode is Mode.STORAGE else "the command path"
            return (
                "invalid",
                f"{domain.name} is a {domain.mode} domain; its events are written by {writer}",
            )
        if event.type not in domain.events:
            return "unknown_event_type", f"{domain.name} has no event type {event.type!r}"
        printable = _printable(event)
        if printable is not None:
            return "invalid", printable
        if event.version is not None:
            return (
                "already_versioned",
                f"events on this topic carry no version, got {event.version}",
            )
        known = domain.schema_version(event.type)
        if event.schema_version > known:  # written by newer code: re-submit once it runs here
            return (
                "unknown_schema_version",
                f"{event.type} schema version {event.schema_version} is newer than this "
                f"appender's {known}; deploy the code that declares it, then re-submit",
            )
        return None


def _printable(event: Event) -> str | None:
    """Why an id of ``event``'s metadata is refused (a control character: it would break every
    line that names it, as the commands' door refuses it), or None."""
    metadata = event.metadata
    actor = metadata.actor
    for name, value in (
        ("client_id", metadata.client_id),
        ("command_id", metadata.command_id),
        ("correlation_id", metadata.correlation_id),
        ("causation_id", metadata.causation_id),
        ("actor.principal", actor.principal if actor is not None else None),
    ):
        where = control_character(value) if value is not None else None
        if where is not None:
            return f"metadata.{name} holds a control character ({where}); ids are printable text"
    return None


def event_id_of(record: Record) -> str | None:
    """The id of the event a dead-lettered record carries, if it can be read."""
    try:
        return decode(record.value).id
    except InvalidEnvelope:
        return None


def with_trace_id(event: Event, record: Record) -> Event:
    """The event with the trace id its record's context names in its metadata (the stored
    event keeps it); the event itself when the record carries no valid context."""
    trace_id = tracing.trace_id_of(record.headers)
    if trace_id is None:
        return event
    metadata = replace(event.metadata, trace_id=trace_id)
    return Event(
        event.id,
        event.aggregate_type,
        event.aggregate_id,
        event.type,
        event.data,
        event.version,
        metadata,
        event.occurred_at,
        event.after,
        event.schema_version,
        event.expected_version,
    )
