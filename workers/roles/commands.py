"""The command side: validate a request, mark (async) or validate on state (sync), then answer.

Transport-neutral: the HTTP view and the ``commands`` topic agent both call
``CommandService.handle`` and get an ``Answer`` (status code + JSON body).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from snapshot_rules.domain import Domain, Domains, Mode
from topics.envelope import (
    AGGREGATE_ID_RE,
    Event,
    Metadata,
    aggregate_key,
    utc_now,
    validate_data,
)
from topics.errors import (
    ConcurrencyConflict,
    EventfleetError,
    InvalidEnvelope,
    InvalidEventData,
    InvalidInput,
    TransitionRejected,
    Unavailable,
    UnknownAggregateType,
    UnknownEventType,
)
from workers.metrics import Metrics
from workers.ports import (
    CommandMemory,
    EventStore,
    Marker,
    MarkRequest,
    Outgoing,
    Producer,
    SyncAppender,
)

log = logging.getLogger(__name__)

NO_EVENTS = "-"  # MarkRequest.fallback: the store holds no event of the aggregate

_BODY_FIELDS = frozenset(
    ("type", "data", "client_id", "command_id", "correlation_id", "causation_id")
)


class PayloadTooLarge(InvalidInput):
    """The request body is over the configured limit."""


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """``append event <type> to aggregate <aggregate_type>/<aggregate_id>``."""

    aggregate_type: str
    aggregate_id: str
    type: str
    data: Mapping[str, Any]
    client_id: str | None = None
    command_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None

    @property
    def key(self) -> str:
        return aggregate_key(self.aggregate_type, self.aggregate_id).decode()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the caller is told: an HTTP status and a JSON body."""

    status: int
    body: Mapping[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps({"status": self.status, "body": self.body})

    @classmethod
    def decode(cls, raw: str) -> Answer:
        obj = orjson.loads(raw)
        return cls(int(obj["status"]), obj["body"])


def error(status: int, code: str, message: str, **extra: Any) -> Answer:
    return Answer(status, {"error": code, "message": message, **extra})


def parse_request(
    aggregate_type: str, aggregate_id: str, body: bytes, *, max_bytes: int
) -> CommandRequest:
    """Decode a request body strictly; raises InvalidInput (400) or PayloadTooLarge (413)."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the body has {len(body)} bytes; the limit is {max_bytes}.")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the body is not valid JSON: {e}.") from e
    if not isinstance(obj, dict):
        raise InvalidInput('the body must be a JSON object like {"type": ..., "data": {...}}.')
    unknown = sorted(obj.keys() - _BODY_FIELDS)
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(_BODY_FIELDS))}."
        )
    if not isinstance(obj.get("type"), str) or not obj["type"]:
        raise InvalidInput("field 'type' is required and must be a non-empty string.")
    for name in ("client_id", "command_id", "correlation_id", "causation_id"):
        value = obj.get(name)
        if value is not None and not (isinstance(value, str) and 0 < len(value) <= 256):
            raise InvalidInput(f"field {name!r} must be a string of 1 to 256 characters.")
    try:
        data = validate_data(obj.get("data", {}), "data")
    except InvalidEnvelope as e:
        raise InvalidInput(f"field {e}.") from e
    if not AGGREGATE_ID_RE.match(aggregate_id):
        raise InvalidInput(f"aggregate id {aggregate_id!r} must match {AGGREGATE_ID_RE.pattern}.")
    return CommandRequest(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        type=obj["type"],
        data=data,
        client_id=obj.get("client_id"),
        command_id=obj.get("command_id"),
        correlation_id=obj.get("correlation_id"),
        causation_id=obj.get("causation_id"),
    )


class CommandService:
    """Answers append requests for every enabled domain, in its mode."""

    def __init__(
        self,
        *,
        domains: Domains,
        marker: Marker,
        memory: CommandMemory,
        store: EventStore,
        producer: Producer,
        events_topic: str,
        metrics: Metrics,
        sync: SyncAppender | None = None,
        answer_wait_s: float = 10.0,
    ) -> None:
        self._domains = domains
        self._marker = marker
        self._memory = memory
        self._store = store
        self._producer = producer
        self._events_topic = events_topic
        self._metrics = metrics
        self._sync = sync
        self._answer_wait_s = answer_wait_s
        self._label_cache: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def handle(self, request: CommandRequest) -> Answer:
        started = time.perf_counter()
        domain_name = (
            request.aggregate_type if request.aggregate_type in self._domains else "unknown"
        )
        answer, outcome = await self._answer(request)
        event_type = request.type
        if domain_name == "unknown" or event_type not in self._domains.get(domain_name).events:
            event_type = "unknown"
        self._metrics.requests.labels(domain_name, event_type, outcome).inc()
        mode = self._domains.get(domain_name).mode.value if domain_name != "unknown" else "none"
        self._metrics.command_latency.labels(domain_name, mode).observe(
            time.perf_counter() - started
        )
        return answer

    async def _answer(self, request: CommandRequest) -> tuple[Answer, str]:
        try:
            domain = self._domains.get(request.aggregate_type)
            if domain.mode is Mode.STORAGE:
                # An appended event would change no document: one version, one change.
                message = (
                    f"{domain.name} documents change only through EventSourcedStorage; use its "
                    "find_one_and_upsert, find_one_and_update or delete_one, and the "
                    f"{', '.join(domain.events)} events reach events.stored by themselves."
                )
                return error(405, "read_only", message), "rejected_read_only"
            domain.check_data(request.type, request.data)
            if domain.mode is Mode.SYNC:
                return await self._append_sync(domain, request)
            return await self._append_async(domain, request)
        except UnknownAggregateType as e:
            return error(404, "unknown_aggregate_type", str(e)), "rejected_unknown_aggregate_type"
        except UnknownEventType as e:
            return error(422, "unknown_event_type", str(e)), "rejected_unknown_event_type"
        except InvalidEventData as e:
            return error(422, "invalid_data", str(e)), "rejected_invalid_data"
        except TransitionRejected as e:
            body = {"current": e.current, "allowed": list(e.allowed)}
            return error(409, "transition_rejected", str(e), **body), "rejected_transition"
        except ConcurrencyConflict as e:
            return error(409, "conflict", str(e)), "rejected_conflict"
        except Unavailable as e:
            return error(503, f"{e.service}_unavailable", str(e)), f"error_{e.service}"

    def _metadata(self, request: CommandRequest) -> Metadata:
        return Metadata(
            client_id=request.client_id,
            command_id=request.command_id,
            correlation_id=request.correlation_id or request.command_id or str(uuid.uuid4()),
            causation_id=request.causation_id,
        )

    async def _append_async(self, domain: Domain, request: CommandRequest) -> tuple[Answer, str]:
        # Every field was validated by parse_request and the domain: build, do not re-check.
        event = Event(
            id=str(uuid.uuid4()),
            aggregate_type=domain.name,
            aggregate_id=request.aggregate_id,
            type=request.type,
            data=request.data,
            metadata=self._metadata(request),
            occurred_at=utc_now(),
        )
        allowed = sorted(domain.spec(request.type).after)
        mark = MarkRequest(request.key, request.type, event.id, allowed, request.command_id)
        result = await self._marker.check_and_mark(mark)
        if result.status == "missing":
            # The mark expired or never existed: the store is the truth.
            last = await self._store.last_event((domain.name, request.aggregate_id))
            mark = replace(mark, fallback=last.type if last else NO_EVENTS)
            result = await self._marker.check_and_mark(mark)
        if result.status == "duplicate":
            return await self._earlier_answer(domain, request, result.value)
        if result.status == "rejected":
            current = None if result.value == "none" else result.value
            domain.check_transition(request.aggregate_id, current, request.type)
            raise AssertionError("the marker rejected a transition the domain allows")
        try:
            delivery = await self._producer.send(self._events_topic, Outgoing.of(event))
        except Unavailable:
            await self._undo(mark, result.value)
            raise
        answer = Answer(
            202, {"event_id": event.id, "partition": delivery.partition, "offset": delivery.offset}
        )
        await self._remember(request, answer)
        return answer, "accepted"

    async def _append_sync(self, domain: Domain, request: CommandRequest) -> tuple[Answer, str]:
        if self._sync is None:
            raise UnknownAggregateType(
                f"{domain.name} is a sync domain; this process has no sync service."
            )
        event_id = str(uuid.uuid4())
        if request.command_id:
            earlier = await self._memory.claim_command(request.key, request.command_id, event_id)
            if earlier is not None:
                return await self._earlier_answer(domain, request, earlier)
        try:
            result = await self._sync.append(
                domain, request.aggregate_id, request.type, request.data, self._metadata(request)
            )
        except EventfleetError:
            if request.command_id:
                await self._forget(request, event_id)
            raise
        stored = {"event_id": result.event.id, "version": result.event.version}
        answer = Answer(201, stored)
        await self._remember(request, answer)
        if not result.published:
            message = (
                f"{domain.name} {request.aggregate_id}: event stored as version "
                f"{result.event.version}, but Kafka did not acknowledge it; it will be published "
                "to events.stored by the outbox relay once Kafka is back."
            )
            return error(503, "stream_unavailable", message, stored=True, **stored), "error_stream"
        return answer, "accepted"

    async def _earlier_answer(
        self, domain: Domain, request: CommandRequest, value: str
    ) -> tuple[Answer, str]:
        """A repeated command id: the first answer, once the first request has one."""
        deadline = time.monotonic() + self._answer_wait_s
        while value.startswith("pending|") or value == "":
            if time.monotonic() > deadline:
                message = f"command {request.command_id} is still being processed; retry later."
                return error(409, "command_in_progress", message), "rejected_in_progress"
            await asyncio.sleep(0.005)
            found = await self._memory.answer(request.key, request.command_id or "")
            if found is None:  # the first request failed and left no trace: run this one
                return await self._answer(request)
            value = found
        return Answer.decode(value), "duplicate"

    async def _remember(self, request: CommandRequest, answer: Answer) -> None:
        if not request.command_id:
            return
        try:
            await self._memory.remember_answer(request.key, request.command_id, answer.encode())
        except Unavailable as e:  # the event is written; only the dedupe memory is lost
            log.warning("answer to command %s not remembered: %s", request.command_id, e)

    async def _undo(self, mark: MarkRequest, previous: str) -> None:
        try:
            await self._marker.restore(mark, previous)
        except Unavailable as e:
            log.error("mark of %s not restored after a failed produce: %s", mark.aggregate_key, e)

    async def _forget(self, request: CommandRequest, event_id: str) -> None:
        try:
            await self._memory.forget_command(request.key, request.command_id or "", event_id)
        except Unavailable as e:
            log.warning("command %s not released: %s", request.command_id, e)
