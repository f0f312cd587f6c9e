"""Re-submitting dead letters once fixed: read an entry, build its command, submit, keep an audit.

A dead letter re-enters through the normal command path, so the store still judges it. A dead
letter's identity is its entry: the first replay of an entry is claimed atomically (in the
action log), and every later one — at the same time from another console or CLI, or aimed at
another aggregate, or with other data — is held against it: the same submission is the same
command (its command id derives from the dead letter, so it is stored once) and is told that
command's outcome; a different one applies nothing and says what the first replay did.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from topics.envelope import Event, decode, utc_now, utc_text
from topics.errors import EventfleetError, InvalidEnvelope, InvalidInput, NotFound
from topics.jsonvalue import Json, JsonObject
from workers import tracing
from workers.ports import (
    PARKED,
    ActionLog,
    OperatorAction,
    ParkedEntry,
    ParkedEvents,
    Record,
    ReplayClaim,
    Told,
    check_head,
)
from workers.roles.command.requests import CommandRequest, parse_request
from workers.roles.deadletter import check_operator
from workers.roles.outcomes import NotDone, Outcome, Refused

SUBMISSION_FIELDS = ("aggregate_type", "aggregate_id", "type", "data")
PM_ROLE = "pm"
"""The role whose dead letters tell of stuck process manager instances: retried, not replayed."""


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One record of the dead-letter topic, with the reason and origin its headers carry."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    detail: str
    source: str  # "<topic>/<partition>/<offset>" of the record that was dead-lettered
    role: str
    event: Event | None  # the dead-lettered envelope, when its bytes are one
    at: datetime | None = None  # when it was dead-lettered (the record's Kafka timestamp)
    parked: tuple[str, int] | None = None
    """(aggregate key, seq): the entry is one of a parked aggregate's queue (workers.ports)."""
    context: tuple[tuple[str, bytes], ...] = ()
    """The trace context the dead letter kept (its ``traceparent``/``tracestate`` headers):
    a replay's span links to it."""

    @property
    def position(self) -> str:
        """Where the entry sits in the dead-letter topic: ``<partition>/<offset>``."""
        return f"{self.partition}/{self.offset}"

    @property
    def source_topic(self) -> str:
        return self.source.rsplit("/", 2)[0] if self.source.count("/") >= 2 else ""

    @property
    def command_id(self) -> str:
        """The replay's command id: the same for every replay of this dead letter."""
        origin = self.event.id if self.event is not None else self.source or self.position
        return f"dlq-replay:{origin}"

    def as_dict(self) -> JsonObject:
        event = self.event
        return {
            "position": self.position,
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source,
            "role": self.role,
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "event_id": event.id if event else None,
            "aggregate_type": event.aggregate_type if event else None,
            "aggregate_id": event.aggregate_id if event else None,
            "type": event.type if event else None,
            "at": utc_text(self.at) if self.at is not None else None,
            "parked": self.parked[0] if self.parked is not None else None,
            "park_seq": self.parked[1] if self.parked is not None else None,
            "value": self.value.decode(errors="replace"),
        }


def entry_of(record: Record) -> DeadLetterEntry:
    """A dead-letter record as an entry; bytes that are no envelope keep ``event=None``."""
    headers = {name: value for name, value in record.headers}

    def header(name: str) -> str:
        return headers.get(name, b"").decode(errors="replace")

    try:
        event: Event | None = decode(record.value)
    except InvalidEnvelope:
        event = None
    seq = header("dlq_park_seq")
    parked = (header("dlq_parked"), int(seq)) if seq.isdecimal() and header("dlq_parked") else None
    return DeadLetterEntry(
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        reason=header("dlq_reason") or "unknown",
        detail=header("dlq_detail"),
        source=header("dlq_source"),
        role=header("dlq_role"),
        event=event,
        at=(
            datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
            if record.timestamp_ms is not None and record.timestamp_ms >= 0
            else None
        ),
        parked=parked,
        context=tuple((n, v) for n, v in record.headers if n in tracing.TRACE_HEADERS),
    )


def entries_of(records: Sequence[Record]) -> list[DeadLetterEntry]:
    """Every record as an entry, oldest first per partition."""
    return [entry_of(r) for r in sorted(records, key=lambda r: (r.partition, r.offset))]


def parse_position(raw: str) -> tuple[int, int]:
    """``<partition>/<offset>`` (or ``:``) as numbers; InvalidInput names the expected form."""
    head, sep, tail = raw.replace(":", "/").partition("/")
    if not sep or not head.isdecimal() or not tail.isdecimal() or len(raw) > 40:
        raise InvalidInput(
            f"dead letter {raw!r} must be named <partition>/<offset>, e.g. 0/12 "
            "(`eventfleet dlq list` shows them)."
        )
    return int(head), int(tail)


def find_entry(entries: Sequence[DeadLetterEntry], position: str) -> DeadLetterEntry:
    partition, offset = parse_position(position)
    for entry in entries:
        if entry.partition == partition and entry.offset == offset:
            return entry
    raise NotFound(f"the dead-letter topic has no entry {partition}/{offset}.")


def draft(entry: DeadLetterEntry) -> JsonObject:
    """The submission an operator starts from: the dead-lettered event's own fields."""
    event = entry.event
    if event is None:  # undecodable: the record's key still names its aggregate
        aggregate_type, _, aggregate_id = (entry.key or b"").decode(errors="replace").partition(":")
        return {
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "type": "",
            "data": {},
        }
    return {
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "type": event.type,
        "data": dict(event.data),
    }


def parse_submission(raw: str | bytes, *, max_bytes: int) -> JsonObject:
    """The operator's (possibly edited) submission: a JSON object of exactly the four fields."""
    if len(raw) > max_bytes:
        raise InvalidInput(f"the submission has {len(raw)} bytes; the limit is {max_bytes}.")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the submission is not valid JSON: {e}.") from e
    if not isinstance(obj, dict):
        raise InvalidInput(
            'the submission must be a JSON object: {"aggregate_type", "aggregate_id", '
            '"type", "data"}.'
        )
    unknown = sorted(obj.keys() - set(SUBMISSION_FIELDS))
    missing = [name for name in SUBMISSION_FIELDS if name not in obj]
    if unknown or missing:
        raise InvalidInput(
            f"the submission has {'unknown fields ' + ', '.join(unknown) if unknown else ''}"
            f"{'; ' if unknown and missing else ''}"
            f"{'missing fields ' + ', '.join(missing) if missing else ''}; it takes exactly "
            f"{', '.join(SUBMISSION_FIELDS)}."
        )
    for name in ("aggregate_type", "aggregate_id", "type"):
        if not isinstance(obj[name], str) or not obj[name]:
            raise InvalidInput(f"submission field {name!r} must be a non-empty string.")
    if not isinstance(obj["data"], dict):
        raise InvalidInput("submission field 'data' must be a JSON object.")
    return obj


async def check_parked(parked: ParkedEvents, entry: DeadLetterEntry) -> ParkedEntry | None:
    """The parked head an entry of a parked queue is, or InvalidInput: an entry behind the head
    waits for it, and one released already was judged again (replaying it would store it twice).
    None for an entry of no parked queue, or a head that left its queue (skipped, or replaced)."""
    if entry.parked is None:
        return None
    key, seq = entry.parked
    head = (await parked.heads([key])).get(key)
    if head is not None and seq >= head[0].seq:
        check_head(head[0], seq)  # behind the head: InvalidInput naming it
        if head[0].reason != PARKED:
            return head[0]
    if entry.reason == PARKED:
        raise InvalidInput(
            f"dead letter {entry.position} waited behind the parked head of {key} and was "
            "released: the appender judges it again (see its outcome). Nothing to replay."
        )
    return None


async def skip_parked(parked: ParkedEvents, entry: DeadLetterEntry, operator: str) -> bool:
    """Skip a parked head: the appender releases the rest of its queue, each judged again.
    False for an entry of no parked queue (a skip is then only a note in the audit trail)."""
    head = await check_parked(parked, entry)
    if head is None:
        return False
    await parked.resolve(head.key, head.seq, "skip", operator)
    return True


Submit = Callable[[CommandRequest], Awaitable[Outcome]]
Render = Callable[[Outcome], Told]


class DeadLetterReplayer:
    """Turns a confirmed submission into a command on the normal path, and records the action."""

    def __init__(
        self,
        *,
        submit: Submit,
        render: Render,
        log: ActionLog,
        stored_topic: str,
        via: str,
        max_bytes: int,
        now: Callable[[], datetime] = utc_now,
        parked: ParkedEvents | None = None,
    ) -> None:
        self._submit = submit
        self._render = render
        self._log = log
        self._stored_topic = stored_topic
        self._via = via
        self._max_bytes = max_bytes
        self._now = now
        self._parked = parked

    def check_replayable(self, entry: DeadLetterEntry) -> None:
        """Raise InvalidInput for an entry the command path must not see again."""
        if entry.role == PM_ROLE:
            raise InvalidInput(
                f"dead letter {entry.position} tells of a process manager's stuck instance "
                f"({entry.detail[:160]}); nothing of it is replayed from here: retry the instance "
                "(`eventfleet pm retry PROCESS KEY`, the console's Processes page, or POST "
                "/v1/processes/{process}/instances/{key}/retry)."
            )
        if entry.source_topic == self._stored_topic:
            raise InvalidInput(
                f"dead letter {entry.position} ({entry.reason}) was already stored: it came "
                f"from {self._stored_topic}. Fix the reducer or projection and rebuild; "
                "re-submitting would append it twice."
            )

    def command(self, entry: DeadLetterEntry, submission: Mapping[str, Json]) -> CommandRequest:
        """Exactly what will be re-submitted (InvalidInput when the command path would refuse)."""
        self.check_replayable(entry)
        body = orjson.dumps(
            {
                "type": submission["type"],
                "data": submission["data"],
                "command_id": entry.command_id,
                "client_id": f"eventfleet-{self._via}",
                "causation_id": entry.event.id if entry.event is not None else None,
            },
            option=orjson.OPT_NON_STR_KEYS,
        )
        return parse_request(
            submission["aggregate_type"],
            submission["aggregate_id"],
            body,
            max_bytes=self._max_bytes,
            desk=True,
        )

    async def replay(
        self, entry: DeadLetterEntry, submission: Mapping[str, Json], *, operator: str
    ) -> OperatorAction:
        """Submit once, record who/when/what/result; the action is returned whatever the status.

        A replay of an entry replayed before with other fields applies nothing (409
        ``already_replayed``, naming the first replay and its answer).
        """
        who = check_operator(operator)
        request = self.command(entry, submission)
        if self._parked is not None:  # only the head of a parked queue is replayed
            await check_parked(self._parked, entry)
        submitted = {
            **{name: submission[name] for name in SUBMISSION_FIELDS},
            "command_id": request.command_id,
        }
        now = self._now()
        claim = ReplayClaim(entry.position, submitted, who, now)
        first = await self._log.claim_replay(claim)
        if first is not None and dict(first.submitted) != submitted:
            answer = self._render(_differs(entry, first))
        else:
            try:
                outcome = await self._traced_submit(entry, request, who)
            except EventfleetError as e:  # the command path answers; this is a wiring failure
                outcome = NotDone("internal", str(e), "fleet")
            answer = self._render(outcome)
            if first is None and _wrote_nothing(outcome):
                await self._log.abandon_replay(claim)  # a corrected fix may go next
            elif first is None:
                await self._log.settle_replay(entry.position, answer.status, answer.body)
        action = OperatorAction(
            id=str(uuid.uuid4()),
            at=now,
            operator=who,
            via=self._via,
            action="dlq_replay",
            target=entry.position,
            submitted=submitted,
            status=answer.status,
            result=dict(answer.body),
        )
        await self._log.record(action)
        return action

    async def _traced_submit(
        self, entry: DeadLetterEntry, request: CommandRequest, operator: str
    ) -> Outcome:
        """Submit; traced, in a span ``dead letter replay`` linked to the dead letter's trace
        (the replay is a new command, in the trace of whoever asked for it)."""
        if not tracing.enabled():
            return await self._submit(request)
        attributes = {
            "eventfleet.dlq_position": entry.position,
            "eventfleet.operator": operator,
            "eventfleet.reason": entry.reason,
        }
        links = [entry.context] if entry.context else []
        with tracing.span("dead letter replay", attributes=attributes, links=links):
            return await self._submit(request)


def _wrote_nothing(outcome: Outcome) -> bool:
    """Refused, failed, or stopped before anything was sent (not an unknown outcome: its event
    may still be stored)."""
    return isinstance(outcome, Refused | NotDone)


def _differs(entry: DeadLetterEntry, first: ReplayClaim) -> Refused:
    """A replay that differs from the entry's first: nothing is applied."""
    told = f"answered {first.status}" if first.status is not None else "still running"
    message = (
        f"dead letter {entry.position} was replayed by {first.operator} at "
        f"{utc_text(first.at)} as {first.submitted.get('type')} to "
        f"{first.submitted.get('aggregate_type')} {first.submitted.get('aggregate_id')} "
        f"({told}); this replay differs from it, so nothing was applied. A dead letter is "
        "replayed once: send a new command for anything else."
    )
    first_replay = {
        "operator": first.operator,
        "at": utc_text(first.at),
        "submitted": dict(first.submitted),
        "status": first.status,
        "result": dict(first.result or {}),
    }
    return Refused("already_replayed", message, {"first_replay": first_replay})
