"""The command side: validate a request, mark (async) or validate on state (sync), then answer.

Transport-neutral: the HTTP view and the ``commands`` topic agent both call
``CommandService.handle`` and get an ``Answer`` (status code + JSON body).

Every answer is true. ``503 <service>_unavailable`` means nothing was written;
``503 outcome_unknown`` means a write was sent without an answer (it may still be stored).
With a ``command_id`` the event id is derived from (aggregate, command id), so retrying the
same command is always safe: the store keeps one copy, and the retry answers with what
happened to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from typing import Any

from snapshot_rules.domain import Domain, Domains, Mode
from topics.envelope import NEW_AGGREGATE, Event, Metadata, derived_event_id, utc_now
from topics.errors import (
    ConcurrencyConflict,
    EventfleetError,
    InvalidEventData,
    InvalidInput,
    OutcomeUnknown,
    ReplayFailed,
    StreamUnavailable,
    TransitionRejected,
    Unavailable,
    UnknownAggregateType,
    UnknownEventType,
)
from workers.metrics import Metrics
from workers.ports import (
    CommandMemory,
    CommandRecord,
    EventStore,
    Marker,
    MarkRequest,
    MarkResult,
    Outgoing,
    Producer,
    Rejections,
    SyncAppender,
)
from workers.roles.requests import Answer, CommandRequest, error, status_of

log = logging.getLogger(__name__)

Outcome = tuple[Answer, str]
"""An answer and its outcome label for ``eventfleet_requests_total``."""


class CommandService:
    """Answers append requests for every enabled domain, in its mode."""

    def __init__(
        self,
        *,
        domains: Domains,
        marker: Marker,
        memory: CommandMemory,
        store: EventStore,
        rejections: Rejections,
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
        self._rejections = rejections
        self._producer = producer
        self._events_topic = events_topic
        self._metrics = metrics
        self._sync = sync
        self._answer_wait_s = answer_wait_s
        self._labels: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def handle(self, request: CommandRequest) -> Answer:
        started = time.perf_counter()
        answer, outcome = await self._answer(request)
        requests, latency = self._children(request, outcome)
        requests.inc()
        latency.observe(time.perf_counter() - started)
        return answer

    def _children(self, request: CommandRequest, outcome: str) -> tuple[Any, Any]:
        """The metric children of one (domain, event type, outcome), cached: labels() is slow."""
        domain = request.aggregate_type if request.aggregate_type in self._domains else "unknown"
        event_type = request.type
        if domain == "unknown" or event_type not in self._domains.get(domain).events:
            event_type = "unknown"
        key = (domain, event_type, outcome)
        children = self._labels.get(key)
        if children is None:
            mode = self._domains.get(domain).mode.value if domain != "unknown" else "none"
            children = (
                self._metrics.requests.labels(domain, event_type, outcome),
                self._metrics.command_latency.labels(domain, mode),
            )
            self._labels[key] = children
        return children

    async def _answer(self, request: CommandRequest) -> Outcome:
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
            body: dict[str, Any] = {"current": e.current}
            if e.allowed:  # a state rule's refusal (sync) cannot say which types would pass
                body["allowed"] = list(e.allowed)
            return error(409, "transition_rejected", str(e), **body), "rejected_transition"
        except ConcurrencyConflict as e:
            return error(409, "conflict", str(e)), "rejected_conflict"
        except Unavailable as e:
            message = f"{e} Nothing was written; retry."
            return error(503, f"{e.service}_unavailable", message), f"error_{e.service}"
        except ReplayFailed as e:
            return error(500, "replay_failed", str(e)), "error_replay"

    def _event_id(self, request: CommandRequest) -> str:
        if request.command_id is None:
            return str(uuid.uuid4())
        return derived_event_id(request.aggregate_type, request.aggregate_id, request.command_id)

    def _metadata(self, request: CommandRequest, event_id: str) -> Metadata:
        """Who asked; a request without a correlation id starts a conversation named by its
        command id, or else by its event."""
        return Metadata(
            client_id=request.client_id,
            command_id=request.command_id,
            correlation_id=request.correlation_id or request.command_id or event_id,
            causation_id=request.causation_id,
        )

    # --- async mode --------------------------------------------------------------------------

    async def _append_async(self, domain: Domain, request: CommandRequest) -> Outcome:
        event_id = self._event_id(request)
        claimed = await self._claim(request, event_id)
        if isinstance(claimed, tuple):
            return claimed
        try:
            mark, result = await self._mark(domain, request, event_id)
        except EventfleetError:
            await self._release(request, event_id)
            raise
        if result.status == "rejected":
            return await self._refused(domain, request, event_id, claimed, result.current)
        event = Event(
            id=event_id,
            aggregate_type=domain.name,
            aggregate_id=request.aggregate_id,
            type=request.type,
            data=request.data,
            metadata=self._metadata(request, event_id),
            occurred_at=utc_now(),
            after=result.after,
            schema_version=domain.schema_version(request.type),
        )
        try:
            delivery = await self._producer.send(self._events_topic, Outgoing.of(event))
        except OutcomeUnknown as e:
            # Sent, not acknowledged: the mark stays tentative and expires by itself.
            await self._unknown(request, event_id)
            return _unknown(str(e), event_id, request.command_id), f"unknown_{e.service}"
        except StreamUnavailable:
            if result.status == "marked":
                await self._restore(mark, result)
            await self._release(request, event_id)
            raise
        answer = Answer(
            202, {"event_id": event.id, "partition": delivery.partition, "offset": delivery.offset}
        )
        await self._settle(request, answer)
        return answer, "accepted"

    async def _mark(
        self, domain: Domain, request: CommandRequest, event_id: str
    ) -> tuple[MarkRequest, MarkResult]:
        allowed = sorted(domain.spec(request.type).after)
        mark = MarkRequest(request.key, request.type, event_id, allowed)
        result = await self._marker.check_and_mark(mark)
        if result.status == "missing":
            # The mark expired or never existed: the store is the truth.
            last = await self._store.last_event((domain.name, request.aggregate_id))
            fallback = NEW_AGGREGATE if last is None else f"{last.type}|{last.id}"
            mark = replace(mark, fallback=fallback)
            result = await self._marker.check_and_mark(mark)
        return mark, result

    async def _refused(
        self,
        domain: Domain,
        request: CommandRequest,
        event_id: str,
        takeover: bool,
        current: str | None,
    ) -> Outcome:
        """The marker refused the event; with a command id, first ask what became of it."""
        if request.command_id is not None:
            settled = await self._settled(domain, request, event_id)
            if settled is not None:
                return settled
            if takeover:  # an earlier attempt was sent without an answer: it may still land
                await self._unknown(request, event_id)
                message = (
                    f"an earlier attempt of command {request.command_id} was sent without an "
                    "answer and may still be stored."
                )
                return _unknown(message, event_id, request.command_id), "unknown_stream"
            await self._release(request, event_id)
        domain.check_transition(request.aggregate_id, current, request.type)
        raise AssertionError("the marker rejected a transition the domain allows")

    # --- sync mode ---------------------------------------------------------------------------

    async def _append_sync(self, domain: Domain, request: CommandRequest) -> Outcome:
        if self._sync is None:
            raise UnknownAggregateType(
                f"{domain.name} is a sync domain; this process has no sync service."
            )
        event_id = self._event_id(request)
        claimed = await self._claim(request, event_id)
        if isinstance(claimed, tuple):
            return claimed
        try:
            result = await self._sync.append(
                domain,
                request.aggregate_id,
                request.type,
                request.data,
                self._metadata(request, event_id),
                event_id=event_id,
            )
        except (TransitionRejected, ConcurrencyConflict):
            if request.command_id is not None:
                settled = await self._settled(domain, request, event_id)
                if settled is not None:
                    return settled
                if claimed:
                    await self._unknown(request, event_id)
                    raise
            await self._release(request, event_id)
            raise
        except OutcomeUnknown as e:
            await self._unknown(request, event_id)
            return _unknown(str(e), event_id, request.command_id), f"unknown_{e.service}"
        except EventfleetError:
            await self._release(request, event_id)
            raise
        body: dict[str, Any] = {"event_id": result.event.id, "version": result.event.version}
        if result.duplicate:
            body["duplicate"] = True
        else:
            body["published"] = result.published
        answer = Answer(201, body)
        await self._settle(request, answer)
        return answer, "duplicate" if result.duplicate else "accepted"

    # --- the command memory ------------------------------------------------------------------

    async def _claim(self, request: CommandRequest, event_id: str) -> Outcome | bool:
        """Claim the command id: False (fresh), True (over an unknown attempt) or the answer."""
        if request.command_id is None:
            return False
        deadline = time.monotonic() + self._answer_wait_s
        delay = 0.005
        while True:
            record = await self._memory.claim(request.key, request.command_id, event_id)
            if record is None:
                return False
            if record.state == "unknown":
                return True
            if record.state == "answered":
                return Answer.decode(record.answer), "duplicate"
            # Another request holds the claim: wait for its answer (the claim is bounded).
            if time.monotonic() > deadline:
                message = f"command {request.command_id} is still being processed; retry later."
                return error(409, "command_in_progress", message), "rejected_in_progress"
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _settled(
        self, domain: Domain, request: CommandRequest, event_id: str
    ) -> Outcome | None:
        """The answer for an event that is already stored or was refused by the store."""
        stored = await self._store.find([event_id])
        if event_id in stored:
            status = 201 if domain.mode is Mode.SYNC else 202
            body = {"event_id": event_id, "version": stored[event_id].version, "duplicate": True}
            answer = Answer(status, body)
            await self._settle(request, answer)
            return answer, "duplicate"
        refused = (await self._rejections.find([event_id])).get(event_id)
        if refused is not None:
            answer = error(
                status_of(refused.reason, 409),  # one status per code: invalid_data is 422 here too
                refused.reason,
                refused.message,
                event_id=event_id,
            )
            await self._settle(request, answer)
            return answer, "rejected_at_store"
        return None

    async def _settle(self, request: CommandRequest, answer: Answer) -> None:
        if request.command_id is None:
            return
        try:
            await self._memory.settle(request.key, request.command_id, answer.encode())
        except Unavailable as e:  # the event is written; only the dedupe memory is lost
            log.warning("answer to command %s not remembered: %s", request.command_id, e)

    async def _unknown(self, request: CommandRequest, event_id: str) -> None:
        if request.command_id is None:
            return
        try:
            await self._memory.unknown(request.key, request.command_id, event_id)
        except Unavailable as e:  # the claim expires by itself within its bound
            log.warning("command %s not marked unknown: %s", request.command_id, e)

    async def _release(self, request: CommandRequest, event_id: str) -> None:
        if request.command_id is None:
            return
        try:
            await self._memory.release(request.key, request.command_id, event_id)
        except Unavailable as e:  # the claim expires by itself within its bound
            log.warning("command %s not released: %s", request.command_id, e)

    async def _restore(self, mark: MarkRequest, result: MarkResult) -> None:
        try:
            await self._marker.restore(mark, result)
        except Unavailable as e:  # a tentative mark expires by itself within its bound
            log.warning("mark of %s not restored after a failed produce: %s", mark.aggregate_key, e)


def _unknown(message: str, event_id: str, command_id: str | None) -> Answer:
    """503 outcome_unknown: a write was sent without an answer; it may still be stored."""
    if command_id is not None:
        message += (
            " Ask GET .../outcome?command_id=... for what became of it; retrying with the same "
            "command_id is safe."
        )
    else:
        message += (
            " Ask GET .../outcome?event_id=... for what became of it; a retry without a "
            "command_id may store the event twice."
        )
    return error(503, "outcome_unknown", message, event_id=event_id, command_id=command_id)


class Outcomes:
    """``GET .../outcome``: what became of a command or an event, from the store and the memory."""

    def __init__(
        self,
        *,
        domains: Domains,
        store: EventStore,
        rejections: Rejections,
        memory: CommandMemory | None,
    ) -> None:
        self._domains = domains
        self._store = store
        self._rejections = rejections
        self._memory = memory

    async def ask(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        command_id: str | None = None,
        event_id: str | None = None,
    ) -> Answer:
        """200 with ``outcome`` stored / rejected / accepted / in_progress / unknown, else 404."""
        domain = self._domains.get(aggregate_type)
        if (command_id is None) == (event_id is None):
            raise InvalidInput("give exactly one of the query parameters command_id or event_id.")
        if command_id is not None:
            event_id = derived_event_id(domain.name, aggregate_id, command_id)
        assert event_id is not None
        body: dict[str, Any] = {"event_id": event_id, "command_id": command_id}
        found = (await self._store.find([event_id])).get(event_id)
        if found is not None and (found.aggregate_type, found.aggregate_id) == (
            domain.name,
            aggregate_id,
        ):
            return Answer(200, {**body, "outcome": "stored", "version": found.version})
        refused = (await self._rejections.find([event_id])).get(event_id)
        if refused is not None and refused.aggregate_id == aggregate_id:
            return Answer(
                200,
                {**body, "outcome": "rejected", "reason": refused.reason, "message": refused.message},
            )
        if command_id is not None and self._memory is not None:
            key = f"{domain.name}:{aggregate_id}"
            record = await self._memory.recall(key, command_id)
            if record is not None:
                return Answer(200, {**body, **_remembered(record)})
        message = (
            f"nothing is known of that {'command' if command_id else 'event'} on "
            f"{domain.name} {aggregate_id}: it was never accepted here, or its answer expired."
        )
        return error(404, "not_found", message, outcome="none", **body)


def _remembered(record: CommandRecord) -> dict[str, Any]:
    if record.state == "pending":
        return {"outcome": "in_progress"}
    if record.state == "unknown":
        return {
            "outcome": "unknown",
            "message": "sent without an answer; it may still be stored. Retrying is safe.",
        }
    answer = Answer.decode(record.answer)
    if answer.status in (201, 202):
        return {"outcome": "accepted", "answer": answer.body}
    return {"outcome": "rejected", "reason": answer.body.get("error"), "answer": answer.body}
