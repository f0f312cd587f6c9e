"""The command side: validate a request, mark (async) or validate on state (sync), answer truly.

Transport-neutral: the HTTP view and the ``commands`` topic agent both call
``CommandService.handle`` and get an ``Outcome`` (``workers.roles.outcomes``); the runtime
turns it into a status. The domain and the event type's spec are resolved once per request.

Every answer is true. ``NotDone`` means nothing was written; ``Unknown`` that a write was sent
without an answer (it may still be stored). With a ``command_id`` the event id is derived from
(aggregate, command id), so retrying the same command is always safe, and the retry is told
what became of it: accepted, stored, refused at the store, or still unknown.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from snapshot_rules.domain import Domain, Domains, EventSpec, Mode
from topics.envelope import (
    NEW_AGGREGATE,
    Actor,
    Event,
    Metadata,
    command_scope,
    derived_event_id,
    utc_now,
)
from topics.errors import (
    ConcurrencyConflict,
    Forbidden,
    InvalidEventData,
    OutcomeUnknown,
    ReplayFailed,
    StreamUnavailable,
    TransitionRejected,
    Unavailable,
    UnknownAggregateType,
    UnknownEventType,
)
from workers import tracing
from workers.metrics import Metrics
from workers.ports import (
    AggregateRef,
    AppendProgress,
    Delivery,
    EventStore,
    MarkRequest,
    MarkResult,
    Outgoing,
    Producer,
    Rejections,
    SyncAppender,
)
from workers.roles.ledger import CommandLedger, new_token
from workers.roles.outcomes import (
    Accepted,
    NotDone,
    Outcome,
    Refused,
    Stored,
    Unknown,
    decode,
    label,
    refusal_at_store,
)
from workers.roles.personal import Shredder
from workers.roles.refusals import RefusalCheck, transition_refused
from workers.roles.requests import CommandRequest
from workers.roles.state import StateLoader


@dataclass(frozen=True, slots=True)
class Command:
    """One request with everything resolved once: its domain, its event type's spec, its ids."""

    request: CommandRequest
    domain: Domain
    spec: EventSpec
    event_id: str
    token: str

    @property
    def key(self) -> str:
        return self.request.key

    @property
    def ref(self) -> AggregateRef:
        return (self.domain.name, self.request.aggregate_id)

    @property
    def command_id(self) -> str | None:
        """The command id as the client sent it (answers and metadata carry it)."""
        return self.request.command_id

    @property
    def memory_id(self) -> str | None:
        """The command id in its sender's scope: what the memory keys and the event id derives
        from, so another principal's equal command id is another command."""
        r = self.request
        return None if r.command_id is None else command_scope(r.command_id, r.actor)

    def metadata(self) -> Metadata:
        """Who asked; a request without a correlation id starts a conversation named by its
        command id, or else by its event."""
        r = self.request
        return Metadata(
            client_id=r.client_id,
            command_id=r.command_id,
            correlation_id=r.correlation_id or r.command_id or self.event_id,
            causation_id=r.causation_id,
            actor=r.actor,
            trace_id=tracing.current_trace_id(),
        )


class CommandService:
    """Answers append requests for every enabled domain, in its mode."""

    def __init__(
        self,
        *,
        domains: Domains,
        ledger: CommandLedger,
        store: EventStore,
        rejections: Rejections,
        producer: Producer,
        progress: AppendProgress,
        events_topic: str,
        metrics: Metrics,
        sync: SyncAppender | None = None,
        shredder: Shredder | None = None,
        loader: StateLoader | None = None,
        answer_wait_s: float = 10.0,
        refusal_wait_s: float = 3.0,
    ) -> None:
        self._domains = domains
        self._ledger = ledger
        self._store = store
        self._rejections = rejections
        self._producer = producer
        self._events_topic = events_topic
        self._metrics = metrics
        self._sync = sync
        self._shredder = shredder
        self._loader = loader
        self._answer_wait_s = answer_wait_s
        self._refusals = RefusalCheck(
            ledger=ledger, store=store, progress=progress, wait_s=refusal_wait_s
        )
        self._labels: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def handle(self, request: CommandRequest) -> Outcome:
        started = time.perf_counter()
        outcome = await self._outcome(request)
        if isinstance(outcome, Refused) and request.command_id is not None:
            await self._remember_refusal(request, request.command_id, outcome)
        requests, latency = self._children(request, label(outcome))
        requests.inc()
        latency.observe(time.perf_counter() - started, tracing.exemplar())
        return outcome

    async def _remember_refusal(
        self, request: CommandRequest, command_id: str, outcome: Refused
    ) -> None:
        """A refusal at the door, kept under the sender's command id for the outcome query.

        Not a retry told a recorded answer, a refusal at the store (the appender records it),
        a command still in progress, nor a replay failure (nothing the caller did: a retry may
        pass), nor a type this fleet does not serve (no aggregate to ask about).
        """
        if outcome.duplicate or outcome.at_store or outcome.code in _NOT_REMEMBERED:
            return
        if request.aggregate_type not in self._domains:
            return
        await self._ledger.refused(request.key, command_scope(command_id, request.actor), outcome)

    def _children(self, request: CommandRequest, outcome: str) -> tuple[Any, Any]:
        """The metric children of one (domain, event type, outcome), cached: labels() is slow."""
        key = (request.aggregate_type, request.type, outcome)
        children = self._labels.get(key)
        if children is None:
            domain = request.aggregate_type if request.aggregate_type in self._domains else "unknown"
            event_type = request.type
            if domain == "unknown" or event_type not in self._domains.get(domain).events:
                event_type = "unknown"
            mode = self._domains.get(domain).mode.value if domain != "unknown" else "none"
            children = (
                self._metrics.requests.labels(domain, event_type, outcome),
                self._metrics.command_latency.labels(domain, mode),
            )
            self._labels[key] = children
        return children

    async def _outcome(self, request: CommandRequest) -> Outcome:
        try:
            domain = self._domains.get(request.aggregate_type)
            if domain.mode is Mode.STORAGE:  # an appended event would change no document
                return Refused("read_only", _read_only(domain))
            if request.actor is not None:
                request = await self._admitted(domain, request, request.actor)
            command = await self._sealed(self._resolve(domain, request))
            if command.domain.mode is Mode.SYNC:
                return await self._append_sync(command)
            return await self._append_async(command)
        except UnknownAggregateType as e:
            return Refused("unknown_aggregate_type", str(e))
        except UnknownEventType as e:
            return Refused("unknown_event_type", str(e))
        except Forbidden as e:
            return Refused("forbidden", str(e), {"reason": e.reason})
        except InvalidEventData as e:
            return Refused("invalid_data", str(e))
        except TransitionRejected as e:
            return transition_refused(e)
        except ConcurrencyConflict as e:
            return Refused("conflict", str(e))
        except Unavailable as e:
            return NotDone(f"{e.service}_unavailable", f"{e} Nothing was written; retry.", e.service)
        except ReplayFailed as e:
            return Refused("replay_failed", str(e))

    async def _admitted(
        self, domain: Domain, request: CommandRequest, actor: Actor
    ) -> CommandRequest:
        """The request as the domain's access rule admits it for ``actor`` (data possibly
        filled from the actor); raises Forbidden before anything is marked or produced."""
        domain.spec(request.type)  # an unknown type is a 422 before it is a 403
        rule = domain.access.rule(request.type)
        state = None
        if rule.needs_state:
            if self._loader is None:
                raise RuntimeError(f"{domain.name}: an access rule needs state and no loader")
            folded = await self._loader.latest(domain, request.aggregate_id, trigger="validation")
            state = folded.state if folded.version else None
        data = rule.check(actor, request.data, state)
        return request if data is request.data else replace(request, data=data)

    def _resolve(self, domain: Domain, request: CommandRequest) -> Command:
        """The event type's spec and the ids, resolved once; the data checked once."""
        spec = domain.spec(request.type)
        domain.check_data(request.type, request.data)
        if request.command_id is None:
            event_id = str(uuid.uuid4())
        else:
            scoped = command_scope(request.command_id, request.actor)
            event_id = derived_event_id(domain.name, request.aggregate_id, scoped)
        return Command(request, domain, spec, event_id, new_token())

    async def _sealed(self, c: Command) -> Command:
        """The command with its personal fields sealed: nothing after this sees the plaintext
        (checked above), not the topics, the store, the replies nor the dead letters."""
        if self._shredder is None or c.domain.personal is None:
            return c
        data = await self._shredder.seal(c.domain, c.request.aggregate_id, c.request.data)
        if data is c.request.data:
            return c
        r = c.request  # built directly: dataclasses.replace and copy cost ~10 µs here
        request = CommandRequest(
            r.aggregate_type, r.aggregate_id, r.type, data, client_id=r.client_id,
            command_id=r.command_id, correlation_id=r.correlation_id,
            causation_id=r.causation_id, actor=r.actor,
        )  # fmt: skip
        return Command(request, c.domain, c.spec, c.event_id, c.token)

    # --- async mode --------------------------------------------------------------------------

    async def _append_async(self, c: Command) -> Outcome:
        mark = MarkRequest(
            c.key, c.request.type, c.event_id, sorted(c.spec.after),
            command_id=c.memory_id, token=c.token,
        )  # fmt: skip
        deadline = time.monotonic() + self._answer_wait_s
        delay = 0.005
        while True:
            try:
                result = await self._ledger.claim_and_mark(mark)
                if result.status == "missing":  # no mark: the store is the truth
                    head = await self._store.last_event(c.ref)
                    mark = MarkRequest(
                        mark.aggregate_key, mark.event_type, mark.event_id, mark.allowed,
                        fallback=_fallback(head), command_id=c.memory_id, token=c.token,
                    )  # fmt: skip
                    result = await self._ledger.claim_and_mark(mark)
            except Unavailable:
                await self._ledger.release(c.key, c.memory_id, c.token)
                raise
            if result.status != "busy":
                break
            # Another request holds the claim: wait for its answer (the claim is bounded).
            if time.monotonic() > deadline:
                message = f"command {c.command_id} is still being processed; retry later."
                return Refused("command_in_progress", message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        if result.status == "answered":
            assert result.record is not None
            return await self._recorded(c, decode(result.record.answer))
        if result.takeover:  # an earlier attempt was sent without an answer: did it land?
            settled = await self._settled(c)
            if settled is not None:
                return settled
        if result.status == "rejected":
            checked = await self._refused(c, mark, result)
            if not isinstance(checked, tuple):
                return checked
            mark, result = checked  # the store's settled head allows it: marked over it
        return await self._produce(c, mark, result)

    async def _refused(
        self, c: Command, mark: MarkRequest, result: MarkResult
    ) -> Outcome | tuple[MarkRequest, MarkResult]:
        """The marker refused the event; a 409 only when the store's settled head agrees."""
        if c.command_id is not None and not result.takeover:
            settled = await self._settled(c)  # a retry of a command the store decided
            if settled is not None:
                return settled
        if result.takeover:  # an earlier attempt was sent without an answer: it may still land
            message = (
                f"an earlier attempt of command {c.command_id} was sent without an answer and "
                "may still be stored."
            )
            await self._ledger.unknown(c.key, c.memory_id, c.event_id)
            return Unknown(c.event_id, c.command_id, message)
        try:
            checked = await self._refusals.verify(c.domain, c.request.aggregate_id, mark, result)
        except Unavailable:
            await self._ledger.release(c.key, c.memory_id, c.token)
            raise
        if not isinstance(checked, tuple):
            await self._ledger.release(c.key, c.memory_id, c.token)
        return checked

    async def _produce(self, c: Command, mark: MarkRequest, result: MarkResult) -> Outcome:
        event = Event(
            id=c.event_id,
            aggregate_type=c.domain.name,
            aggregate_id=c.request.aggregate_id,
            type=c.request.type,
            data=c.request.data,
            metadata=c.metadata(),
            occurred_at=utc_now(),
            after=result.after,
            schema_version=c.spec.version,
        )
        try:
            delivery = await self._send(event)
        except OutcomeUnknown as e:
            # Sent, not acknowledged: it may still be stored; the mark stays until we know.
            await self._ledger.unknown(c.key, c.memory_id, c.event_id)
            return Unknown(c.event_id, c.command_id, str(e), e.service)
        except StreamUnavailable:
            await self._ledger.restore(mark, result)
            await self._ledger.release(c.key, c.memory_id, c.token)
            raise
        outcome = Accepted(event.id, delivery.partition, delivery.offset)
        await self._ledger.settle(c.key, c.memory_id, outcome)
        return outcome

    async def _send(self, event: Event) -> Delivery:
        """Produce the event; traced, in a producer span whose context its headers carry."""
        if not tracing.enabled():
            return await self._producer.send(self._events_topic, Outgoing.of(event))
        if not tracing.recording():  # the request is not sampled: no span of ours
            message = Outgoing.of(event)
            headers = tracing.with_context(message.headers)  # an unsampled context goes on
            return await self._producer.send(
                self._events_topic, Outgoing(message.key, message.value, headers)
            )
        attributes = {"eventfleet.event_id": event.id, "eventfleet.aggregate": event.key.decode()}
        with tracing.span(
            f"{self._events_topic} publish", kind=tracing.SpanKind.PRODUCER, attributes=attributes
        ):
            message = Outgoing.of(event)
            headers = tracing.with_context(message.headers)
            return await self._producer.send(
                self._events_topic, Outgoing(message.key, message.value, headers)
            )

    # --- sync mode ---------------------------------------------------------------------------

    async def _append_sync(self, c: Command) -> Outcome:
        if self._sync is None:
            raise UnknownAggregateType(
                f"{c.domain.name} is a sync domain; this process has no sync service."
            )
        takeover = False
        if c.memory_id is not None:
            found = await self._ledger.claim(c.key, c.memory_id, c.event_id, c.token)
            if found is not None and found.state == "answered":
                return await self._recorded(c, decode(found.answer))
            if found is not None and found.state == "pending":
                return await self._wait_for_sync_claim(c)
            takeover = found is not None  # over an unknown attempt
        try:
            result = await self._sync.append(
                c.domain, c.request.aggregate_id, c.request.type, c.request.data, c.metadata(),
                event_id=c.event_id, data_checked=True,
            )  # fmt: skip
        except (TransitionRejected, ConcurrencyConflict):
            if c.command_id is not None:
                settled = await self._settled(c)
                if settled is not None:
                    return settled
                if takeover:
                    await self._ledger.unknown(c.key, c.memory_id, c.event_id)
                    raise
            await self._ledger.release(c.key, c.memory_id, c.token)
            raise
        except OutcomeUnknown as e:
            await self._ledger.unknown(c.key, c.memory_id, c.event_id)
            return Unknown(c.event_id, c.command_id, str(e), e.service)
        except BaseException:
            await self._ledger.release(c.key, c.memory_id, c.token)
            raise
        version = result.event.version or 0
        stored = Stored(result.event.id, version, result.published, result.duplicate)
        await self._ledger.settle(c.key, c.memory_id, stored)
        return stored

    async def _wait_for_sync_claim(self, c: Command) -> Outcome:
        memory_id = c.memory_id
        assert memory_id is not None
        deadline = time.monotonic() + self._answer_wait_s
        delay = 0.005
        while time.monotonic() <= deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            found = await self._ledger.claim(c.key, memory_id, c.event_id, c.token)
            if found is None or found.state == "unknown":
                return await self._append_sync(c)  # the claim is ours now
            if found.state == "answered":
                return await self._recorded(c, decode(found.answer))
        message = f"command {c.command_id} is still being processed; retry later."
        return Refused("command_in_progress", message)

    # --- what became of a command ------------------------------------------------------------

    async def _recorded(self, c: Command, recorded: Accepted | Stored | Refused) -> Outcome:
        """A retry: the recorded outcome, brought up to date with the store (an accepted event
        may since have been stored, or refused at the store)."""
        if isinstance(recorded, Accepted):
            settled = await self._settled(c)
            if settled is not None:
                return settled
            return Accepted(recorded.event_id, recorded.partition, recorded.offset, duplicate=True)
        if isinstance(recorded, Stored):
            return Stored(recorded.event_id, recorded.version, recorded.published, duplicate=True)
        if recorded.at_store:
            # A copy dead-lettered first, and another stored since: the store is the truth.
            stored = await self._stored(c)
            if stored is not None:
                return stored
        return Refused(recorded.code, recorded.message, recorded.details,
                       at_store=recorded.at_store, duplicate=True)  # fmt: skip

    async def _settled(self, c: Command) -> Outcome | None:
        """The outcome of an event the store already holds or refused; None if neither."""
        stored = await self._stored(c)
        if stored is not None:
            return stored
        refused = (await self._rejections.find([c.event_id])).get(c.event_id)
        if refused is not None:
            outcome = refusal_at_store(refused)
            await self._ledger.settle(c.key, c.memory_id, outcome)
            return outcome
        return None

    async def _stored(self, c: Command) -> Accepted | Stored | None:
        """The command's event as the store holds it (recorded as its outcome), or None."""
        stored = await self._store.find([c.event_id], aggregates=[c.ref])
        if c.event_id not in stored:
            return None
        version = stored[c.event_id].version or 0
        outcome: Accepted | Stored
        if c.domain.mode is Mode.SYNC:
            outcome = Stored(c.event_id, version, duplicate=True)
        else:
            outcome = Accepted(c.event_id, version=version, duplicate=True)
        await self._ledger.settle(c.key, c.memory_id, outcome)
        return outcome


_NOT_REMEMBERED = frozenset({"command_in_progress", "replay_failed"})


def _fallback(head: Event | None) -> str:
    return NEW_AGGREGATE if head is None else f"{head.type}|{head.id}"


def _read_only(domain: Domain) -> str:
    return (
        f"{domain.name} documents change only through EventSourcedStorage; use its "
        "find_one_and_upsert, find_one_and_update or delete_one, and the "
        f"{', '.join(domain.events)} events reach events.stored by themselves."
    )
