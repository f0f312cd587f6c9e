"""Async mode: take the write from its budget, claim the command id and mark the aggregate in one
call, then produce the event.

The answer is ``Accepted`` (the appender stores or refuses it later), a refusal the store's
settled head agrees with (``refusals``), ``Unknown`` when the produce went unanswered, or the
recorded outcome of a retry (``fate``). An expected version is checked in the same call,
against the marker's count, and travels on the event (``Event.expected_version``) for the
store to judge again.
"""

from __future__ import annotations

from dataclasses import replace

from topics.envelope import Event, utc_now
from topics.errors import OutcomeUnknown, StreamUnavailable, Unavailable
from workers import tracing
from workers.ports import (
    BudgetDraw,
    Delivery,
    EventStore,
    MarkRequest,
    MarkResult,
    Outgoing,
    Producer,
)
from workers.roles.command.budget import WriteBudget
from workers.roles.command.fate import CommandFate
from workers.roles.command.intake import Command
from workers.roles.command.ledger import ClaimHeld, CommandLedger, claim_waits, in_progress
from workers.roles.command.refusals import RefusalCheck, fallback_of
from workers.roles.outcomes import Accepted, Outcome, Unknown, decode

_REFUSED = frozenset(("rejected", "wrong_version"))
"""The marker's refusals: answered only once the store agrees (``RefusalCheck``)."""


class AsyncCommandService:
    """Marks, then produces to the events topic; never answers a refusal the store denies."""

    def __init__(
        self,
        *,
        ledger: CommandLedger,
        store: EventStore,
        producer: Producer,
        refusals: RefusalCheck,
        fate: CommandFate,
        events_topic: str,
        answer_wait_s: float = 10.0,
        budget: WriteBudget | None = None,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._producer = producer
        self._refusals = refusals
        self._fate = fate
        self._events_topic = events_topic
        self._claims = claim_waits(answer_wait_s)
        self._budget = budget

    async def append(self, c: Command, draw: BudgetDraw | None = None) -> Outcome:
        """``draw``: the write's draw on its principal's budget, taken in the mark's call."""
        expected = c.request.expected_version
        mark = MarkRequest(
            c.key,
            c.request.type,
            c.event_id,
            sorted(c.spec.after),
            command_id=c.memory_id,
            token=c.token,
            expected_version=expected,
            budget=draw,
        )

        async def claim(num: int) -> tuple[MarkRequest, MarkResult]:
            nonlocal mark
            if num > 1 and mark.budget is not None:  # taken by the first try: no more
                mark = replace(mark, budget=None)
            mark, result = await self._claim(c, mark)
            if result.status == "busy":  # another request holds the claim: its answer
                raise ClaimHeld(c.command_id)
            return mark, result

        try:
            mark, result = await self._claims.call(claim, ClaimHeld)
        except ClaimHeld:
            return in_progress(c.command_id)
        if result.status == "over_budget":  # nothing claimed, nothing marked
            assert draw is not None and self._budget is not None
            return self._budget.refuse(draw, result.retry_after_ms)
        if result.status == "answered":
            assert result.record is not None
            return await self._fate.recorded(c, decode(result.record.answer))
        if result.takeover:  # an earlier attempt was sent without an answer: did it land?
            settled = await self._fate.settled(c)
            if settled is not None:
                return settled
        if result.status in _REFUSED:
            checked = await self._refused(c, mark, result)
            if not isinstance(checked, tuple):
                return checked
            mark, result = checked  # the store's settled head allows it: marked over it
        return await self._produce(c, mark, result)

    async def _claim(self, c: Command, mark: MarkRequest) -> tuple[MarkRequest, MarkResult]:
        """Claim the command and mark its aggregate (over the store's head when the marker has
        no mark of it): the mark as sent last, and its result. The claim is released when a
        dependency is unavailable."""
        try:
            result = await self._ledger.claim_and_mark(mark)
            if result.status == "missing":  # no mark: the store is the truth
                head = next(iter(await self._store.select(c.ref, desc=True, limit=1)), None)
                mark = MarkRequest(
                    mark.aggregate_key,
                    mark.event_type,
                    mark.event_id,
                    mark.allowed,
                    fallback=fallback_of(head),
                    command_id=c.memory_id,
                    token=c.token,
                    expected_version=c.request.expected_version,
                )
                result = await self._ledger.claim_and_mark(mark)
        except Unavailable:
            await self._ledger.release(c.key, c.memory_id, c.token)
            raise
        return mark, result

    async def _refused(
        self, c: Command, mark: MarkRequest, result: MarkResult
    ) -> Outcome | tuple[MarkRequest, MarkResult]:
        """The marker refused the event; a 409 only when the store's settled head agrees."""
        if c.command_id is not None and not result.takeover:
            settled = await self._fate.settled(c)  # a retry of a command the store decided
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
            expected_version=c.request.expected_version,
        )
        try:
            if tracing.enabled():
                delivery = await self._send_traced(event)
            else:  # the common case, without a frame more on the wait for the ack
                delivery = await self._producer.send(self._events_topic, Outgoing.of(event))
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

    async def _send_traced(self, event: Event) -> Delivery:
        """Produce the event, in a producer span whose context its headers carry."""
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
