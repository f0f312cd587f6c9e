"""Making the appender's decisions known: refusals recorded and answered, stored events published.

Every effect is idempotent; a round whose effects fail is kept in the ``Book`` and finished
first by the next call, and only then are its records decided (acked).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from topics.envelope import Event, command_scope, store_position, utc_now
from topics.errors import Unavailable
from workers import tracing
from workers.metrics import Metrics
from workers.ports import Outgoing, Rejection, Rejections
from workers.roles.append.book import AppenderConfig, Book, Round
from workers.roles.append.fates import DeadLetterFates
from workers.roles.append.given import Replies
from workers.roles.append.judge import Refusal
from workers.roles.deadletter import DeadLetter, DeadLetters
from workers.roles.outcomes import Refused, encode, refusal_at_store

log = logging.getLogger(__name__)


class Effects:
    """Refuses, dead-letters and publishes what a round decided, before its records are acked."""

    def __init__(
        self,
        *,
        book: Book,
        rejections: Rejections,
        replies: Replies,
        dead_letters: DeadLetters,
        metrics: Metrics,
        config: AppenderConfig,
        fates: DeadLetterFates | None,
    ) -> None:
        self._book = book
        self._rejections = rejections
        self._producer = replies.producer
        self.dead_letters = dead_letters
        self._metrics = metrics
        self._config = config
        self._render = replies.render  # the runtime's reply for a refusal (commands.replies)
        self._marker = replies.marker
        self._memory = replies.memory
        self.fates = fates  # an accepted event dead-lettered here: its command is told so
        self.started_ns = 0  # when the current batch or tick began (its events' spans start)

    async def finish(self, done: Round, letters: list[DeadLetter]) -> None:
        """Make every decision known, then let the records be acked: refusals first.

        If an effect fails, the whole round is kept and finished first by the next call:
        its records are decided only once every effect is done (each one is idempotent).
        """
        try:
            if done.refused:
                await self._refuse(done.refused)
            if letters:
                if self.fates is not None:
                    await self.fates.record(letters, held=self._book.held_ids())
                await self.dead_letters.send(letters)
            if done.published:
                published = sorted(done.published, key=store_position)
                await self._publish(published, done.parents)
                self._metrics.events_published.labels("async").inc(len(published))
                await self._note_new_aggregates(published)
        except BaseException:
            self._book.keep_unfinished(done, letters)
            raise
        done.decided += [r for refusal in done.refused for r in refusal.waiting.records]

    async def finish_unfinished(self) -> None:
        """Finish the effects of a round that failed last time; its records are ready to be
        returned (``Book.take_ready``)."""
        unfinished = self._book.take_unfinished()
        if unfinished is None:
            return
        done, letters = unfinished
        await self.finish(done, letters)
        self._book.hold_ready([letter.record for letter in letters] + done.decided)

    async def _publish(
        self, published: list[Event], parents: dict[str, Sequence[tuple[str, bytes]]]
    ) -> None:
        """Produce the stored events to events.stored. Traced: one span per event (the child of
        its record's context, from the batch's start until the ack), whose context the
        events.stored record carries."""
        topic = self._config.stored_topic
        if not tracing.enabled():
            await self._producer.send_many(topic, [Outgoing.of(e) for e in published])
            return
        spans: list[tracing.Span | None] = []
        messages = []
        for e in published:
            own = Outgoing.of(e)
            record = parents.get(e.id, ())
            if tracing.sampled(record) is False:  # an unsampled trace: passed on, no span
                spans.append(None)
                messages.append(Outgoing(own.key, own.value, tracing.carried(own.headers, record)))
                continue
            span = tracing.start(
                "appender store",
                parent=tracing.parent_for(e.metadata.trace_id, e.id, record),
                kind=tracing.SpanKind.CONSUMER,
                attributes={"eventfleet.event_id": e.id, "eventfleet.version": e.version or 0},
                start_time_ns=self.started_ns or None,
            )
            spans.append(span)
            messages.append(Outgoing(own.key, own.value, tracing.with_context(own.headers, span)))
        try:
            await self._producer.send_many(topic, messages)
        except BaseException as error:
            for span in spans:
                tracing.fail(span, "publish_failed", f"{type(error).__name__}: {error}")
            raise
        finally:
            tracing.end(spans)

    async def _refuse(self, refusals: list[Refusal]) -> None:
        """Repair marks that name them, then record, dead-letter and answer each refusal.

        The repair comes first: once a refusal is visible (its outcome, its reply), a client's
        next request must be checked against the stored head, not the refused event's mark.
        The command memory learns the refusal too, so a retry of the command is told of it.
        """
        await self._repair_marks(refusals)
        at = utc_now()
        rejections = [
            Rejection(
                event_id=r.waiting.event.id,
                aggregate_type=r.waiting.event.aggregate_type,
                aggregate_id=r.waiting.event.aggregate_id,
                event_type=r.waiting.event.type,
                reason=r.reason,
                message=r.message,
                command_id=r.waiting.event.metadata.command_id,
                rejected_at=at,
                current_version=r.current_version,
            )
            for r in refusals
        ]
        await self._rejections.record(rejections)
        self._book.note_refused([r.waiting.event.id for r in refusals])
        outcomes = [refusal_at_store(rejection) for rejection in rejections]
        if self._memory is not None:
            for r, outcome in zip(refusals, outcomes, strict=True):
                await self._remember(r.waiting.event, outcome)
        await self.dead_letters.send(
            [DeadLetter(r.waiting.record, r.reason, r.message) for r in refusals]
        )
        replies = [
            Outgoing(r.waiting.record.key, self._render(outcome), r.waiting.record.headers)
            for r, outcome in zip(refusals, outcomes, strict=True)
        ]
        await self._producer.send_many(self._config.replies_topic, replies)
        for r in refusals:
            event = r.waiting.event
            self._metrics.store_rejections.labels(event.aggregate_type, r.reason).inc()
            log.info(
                "refused %s %s %s: %s",
                event.aggregate_type,
                event.aggregate_id,
                event.id,
                r.message,
            )

    async def _remember(self, event: Event, outcome: Refused) -> None:
        """Best effort: a retry that finds no record asks the rejections anyway."""
        command_id = event.metadata.command_id
        if self._memory is None or command_id is None:
            return
        try:
            scoped = command_scope(command_id, event.metadata.actor)  # its sender's command
            await self._memory.settle(event.key.decode(), scoped, encode(outcome))
        except Unavailable as e:
            log.warning("refusal of command %s not recorded in the memory: %s", command_id, e)

    async def _note_new_aggregates(self, published: list[Event]) -> None:
        """Aggregates whose first event was just stored: the new-aggregate filter learns them."""
        firsts = [e.key.decode() for e in published if e.version == 1]
        if self._marker is None or not firsts:
            return
        try:
            await self._marker.note_aggregates(firsts)
        except Unavailable as e:  # a missed bit costs one store read, never a wrong answer
            log.warning("%d new aggregates not noted in the filter: %s", len(firsts), e)

    async def _repair_marks(self, refusals: list[Refusal]) -> None:
        if self._marker is None:
            return
        for r in refusals:
            event = r.waiting.event
            ref = (event.aggregate_type, event.aggregate_id)
            try:
                await self._marker.repair(event.key.decode(), event.id, self._book.head_of(ref))
            except Unavailable as e:  # only a cache: a wrong mark is judged here again
                log.warning("mark of %s %s not repaired: %s", ref[0], ref[1], e)
