"""Deciding the waiting events of some aggregates: heads loaded, ids looked up, judged, inserted.

The store is the judge: each round loads the heads it does not know, asks the store only about
ids the judge cannot place, runs the pure ``judge`` per aggregate, numbers what it stores and
inserts it in one ordered call; an aggregate whose version another writer took first is decided
again, up to ``MAX_CONFLICT_ROUNDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from snapshot_rules.domain import Domain, Domains
from snapshot_rules.replay import Folded
from topics.envelope import NEW_AGGREGATE, Event
from topics.errors import StoreUnavailable
from workers import tracing
from workers.metrics import Metrics
from workers.ports import (
    STORE_VERDICTS,
    AggregateRef,
    AppendConflict,
    Head,
    Rejection,
)
from workers.roles.append.book import AppenderConfig, Book, Round
from workers.roles.append.given import AppendStores
from workers.roles.append.judge import Either, Waiting, judge, missing_predecessors

MAX_CONFLICT_ROUNDS = 20
LOOKUP_IDS = 256  # ids per store lookup: a bounded call, whatever the backlog
LOOKUPS_IN_FLIGHT = 16
GAP_HOLD_S = 0.1  # how much longer an event past a gap waits before it is looked at again


def _starts_it(queue: Sequence[Waiting]) -> bool:
    """The events are one chain from ``NEW_AGGREGATE``: each follows NEW or one before it."""
    ids: set[str] = set()
    for w in queue:
        if w.event.after != NEW_AGGREGATE and w.event.after not in ids:
            return False
        ids.add(w.event.id)
    return True


class Decider:
    """Judges, numbers and inserts the events waiting in the ``Book``.

    ``whole_in_hot`` (the store's ``TieredEvents.whole_in_hot``): whether the store holds every
    aggregate of a type from version 1, so that inserting a version 1 of one that exists
    conflicts. Where it says so, an aggregate whose waiting events only start it is not read
    first (``_unread_new``): a new aggregate, the common case, costs the store no head read.
    """

    def __init__(
        self,
        *,
        book: Book,
        stores: AppendStores,
        domains: Domains,
        metrics: Metrics,
        config: AppenderConfig,
    ) -> None:
        self._book = book
        self._store = stores.events
        self._rejections = stores.rejections
        self._domains = domains
        self._metrics = metrics
        self._config = config
        self._loader = stores.loader
        self._whole_in_hot = stores.whole_in_hot

    async def decide(self, refs: list[AggregateRef], now: float) -> Round:
        """Judge, number and insert the waiting events of ``refs``; retry lost version races.

        If a store call fails, every event of ``refs`` waits again as before the call (one
        that was inserted meanwhile is found stored by the next attempt): no record is ever
        dropped without a decision.
        """
        book = self._book
        self._hold_past_gaps(refs, now)
        before = {ref: list(book.queue_of(ref)) for ref in refs}
        try:
            return await self._decide_rounds(refs, now)
        except BaseException:
            for ref, queue in before.items():
                book.set_waiting(ref, queue)
            book.forget_heads()  # what was stored meanwhile is read again
            raise

    def _hold_past_gaps(self, refs: list[AggregateRef], now: float) -> None:
        """Events due now whose records lie past a gap wait a little longer (``hold_past_gaps``)."""
        book = self._book
        for ref in refs:
            queue = book.queue_of(ref)
            if not queue or all(w.deadline > now for w in queue):
                continue
            book.set_waiting(
                ref,
                [
                    Waiting(w.event, w.record, now + GAP_HOLD_S, w.copies)
                    if w.deadline <= now and book.gap_below(w.record.partition, w.record.offset)
                    else w
                    for w in queue
                ],
            )

    async def _decide_rounds(self, refs: list[AggregateRef], now: float) -> Round:
        book = self._book
        done = Round()
        unread = await self._unread_new(refs, now)  # the first round only: see below
        for _ in range(MAX_CONFLICT_ROUNDS):
            refs = [ref for ref in refs if book.queue_of(ref)]
            if not refs:
                return done
            await self.load_heads([ref for ref in refs if ref not in unread])
            stored_ids, refused_ids = await self._look_up(refs, done)
            stored, refused = Either(book.stored, stored_ids), Either(book.refused, refused_ids)
            to_store: list[Waiting] = []
            for ref in refs:
                queue = book.queue_of(ref)
                if not queue:
                    continue
                domain = self._domains.get(ref[0])
                state = await self._state_at_head(domain, ref, queue)
                verdicts = judge(
                    domain,
                    book.head_of(ref),
                    queue,
                    now=now,
                    stored=stored,
                    refused=refused,
                    state=state,
                )
                self._count_waits(queue, verdicts.wait, now)
                done.refused += verdicts.refuse
                to_store += verdicts.store
                book.set_waiting(ref, verdicts.wait)
            conflicted = await self._insert(to_store, done)
            if not conflicted:
                return done
            refs, unread = conflicted, set()  # one was not new after all: read every head now
        raise StoreUnavailable(
            f"gave up after {MAX_CONFLICT_ROUNDS} version conflicts in one batch; "
            "another writer keeps appending to the same aggregates."
        )

    async def _state_at_head(
        self, domain: Domain, ref: AggregateRef, queue: Sequence[Waiting]
    ) -> Folded | None:
        """The state at the head when an event waiting here is judged on who sent it, else None.

        Only event types whose access rule declares a store check cost this read (the chat's
        edits and deletes): snapshot + the events after it, as the command side reads it.
        """
        if not self._config.judge_access or not any(
            domain.access.judged_at_store(w.event.type) for w in queue
        ):
            return None
        assert self._loader is not None  # checked at construction
        for _ in range(2):
            folded = await self._loader.latest(domain, ref[1], trigger="validation")
            head = self._book.head_of(ref)
            if folded.version == (head.version if head else 0):
                return folded
            self._book.forget_head(ref)  # another writer appended: read the head again
            await self.load_heads([ref])
        raise StoreUnavailable(
            f"{domain.name} {ref[1]}: its state and its head disagree twice in a row; another "
            "writer keeps appending to it. The events wait and are judged again."
        )

    async def _unread_new(self, refs: list[AggregateRef], now: float) -> set[AggregateRef]:
        """The aggregates of ``refs`` decided without reading their heads: each one's waiting
        events are a chain from ``NEW_AGGREGATE`` that the judge stores whole on no head, none
        decided before, of a domain whose store holds every aggregate from version 1.

        If such an aggregate exists after all (a command validated against a lost mark, a
        redelivery), the insert of its version 1 conflicts (the unique version index) and the
        round after reads every head, as always. Nothing else is decided on the assumption:
        an aggregate whose events the judge would refuse, hold, or judge on its state is read.
        """
        if self._whole_in_hot is None:
            return set()
        book = self._book
        found: set[AggregateRef] = set()
        whole: dict[str, bool] = {}
        for ref in refs:
            queue = book.queue_of(ref)
            if book.head_of(ref) is not None or not queue or not _starts_it(queue):
                continue
            if any(book.decided(w.event.id) for w in queue):
                continue
            domain = self._domains.get(ref[0])
            if domain.retention is not None or (
                self._config.judge_access
                and any(domain.access.judged_at_store(w.event.type) for w in queue)
            ):
                continue
            verdicts = judge(domain, None, queue, now=now)
            if verdicts.refuse or verdicts.wait:
                continue
            if domain.name not in whole:
                whole[domain.name] = await self._whole_in_hot(domain.name)
            if whole[domain.name]:
                found.add(ref)
        return found

    async def load_heads(self, refs: list[AggregateRef]) -> None:
        unknown = [ref for ref in refs if self._book.head_of(ref) is None]
        if unknown:
            found = await self._store.heads(unknown)
            for ref in unknown:
                if ref in found:
                    self._book.remember_head(ref, found[ref])

    async def _look_up(self, refs: list[AggregateRef], done: Round) -> tuple[set[str], set[str]]:
        """Ask the store about ids the judge cannot place, and drop events already stored.

        Only events off the common path need it: a predecessor that is not the head, or an
        event not chained from the head through the events waiting before it (a redelivery,
        a direct producer). An event whose predecessor is the head, or waits here unstored,
        cannot have been stored itself: versions are contiguous.
        """
        book = self._book
        asks: dict[AggregateRef, set[str]] = {}
        for ref in refs:
            queue = book.queue_of(ref)
            head = book.head_of(ref)
            wanted = missing_predecessors(head, queue)
            ask = {a for a in wanted if not book.decided(a)}
            chained = {head.event_id} if head is not None else {NEW_AGGREGATE}
            for w in queue:
                if book.decided(w.event.id):
                    ask.add(w.event.id)  # decided before (a retried batch): take that decision
                elif w.event.after in chained:
                    chained.add(w.event.id)  # follows the head through unstored events
                elif head is not None:
                    ask.add(w.event.id)  # off the common path: maybe a redelivery
            if ask:
                asks[ref] = ask
        if not asks:
            return set(), set()
        found = await self._find_stored(asks)
        refused = await self.find_refused(sorted(set().union(*asks.values()) - set(found)))
        book.note_stored(found)
        book.note_refused(refused)
        for ref in refs:  # redelivered: stored already; republish (a crash may have cut it)
            queue = book.queue_of(ref)
            again = [w for w in queue if w.event.id in found or w.event.id in refused]
            for w in again:
                if w.event.id in found:
                    done.published.append(found[w.event.id])
                    self._metrics.duplicates_dropped.inc()
                done.decided += w.records
            book.set_waiting(ref, [w for w in queue if w not in again])
        return set(found), set(refused)

    async def _find_stored(self, asks: dict[AggregateRef, set[str]]) -> dict[str, Event]:
        """One lookup per aggregate (it names the shard key and walks the aggregate's index),
        at most LOOKUPS_IN_FLIGHT at once, each of at most LOOKUP_IDS ids: a backlog after a
        stall or a rebalance is many small bounded calls, never one that outlasts its timeout."""
        calls = [
            (ref, ids[i : i + LOOKUP_IDS])
            for ref, wanted in asks.items()
            for ids in [sorted(wanted)]
            for i in range(0, len(ids), LOOKUP_IDS)
        ]
        found: dict[str, Event] = {}
        for start in range(0, len(calls), LOOKUPS_IN_FLIGHT):
            answers = await asyncio.gather(
                *(
                    self._store.find(ids, aggregates=[ref])
                    for ref, ids in calls[start : start + LOOKUPS_IN_FLIGHT]
                )
            )
            for answer in answers:
                found.update(answer)
        return found

    async def stored_of(self, ids: list[str], refs: list[AggregateRef]) -> set[str]:
        """Which of ``ids`` (events of ``refs``) the store holds."""
        return set(await self._store.find(ids, aggregates=refs))

    async def find_refused(self, ids: list[str]) -> dict[str, Rejection]:
        """The store's refusals of ``ids`` (its verdicts only, never a dead letter's fate)."""
        refused: dict[str, Rejection] = {}
        for i in range(0, len(ids), LOOKUP_IDS):
            refused.update(await self._rejections.find(ids[i : i + LOOKUP_IDS]))
        # A dead-lettered copy's fate (workers.roles.append.fates) is no verdict on the event: a
        # readable copy, redelivered from before it, is judged.
        return {i: r for i, r in refused.items() if r.reason in STORE_VERDICTS}

    async def _insert(self, to_store: list[Waiting], done: Round) -> list[AggregateRef]:
        """Number and insert; returns aggregates whose version another writer took first."""
        if not to_store:
            return []
        book = self._book
        numbered = self._number(to_store)
        try:
            await self._store.append(numbered)
        except AppendConflict as conflict:
            inserted = numbered[: conflict.inserted]
            self._stored_now(inserted, to_store[: conflict.inserted], done)
            rest = to_store[conflict.inserted :]
            failed = conflict.failed
            ref = (failed.aggregate_type, failed.aggregate_id)
            book.forget_head(ref)  # re-read: another writer (or a redelivery) got there
            book.put_back(rest)
            return list(dict.fromkeys((w.event.aggregate_type, w.event.aggregate_id) for w in rest))
        self._stored_now(numbered, to_store, done)
        return []

    def _number(self, to_store: list[Waiting]) -> list[Event]:
        """Each event the next version of its aggregate: after its cached head, or 1. Only the
        batch's aggregates are looked up (copying every cached head, up to CACHE_SIZE, cost
        each batch as much as the cache held)."""
        versions: dict[AggregateRef, int] = {}
        numbered = []
        for w in to_store:
            ref = (w.event.aggregate_type, w.event.aggregate_id)
            version = versions.get(ref)
            if version is None:
                head = self._book.head_of(ref)
                version = head.version if head is not None else 0
            versions[ref] = version + 1
            numbered.append(w.event.with_version(version + 1))
        return numbered

    def _stored_now(self, events: list[Event], waiting: list[Waiting], done: Round) -> None:
        book = self._book
        for event in events:
            book.remember_head(
                (event.aggregate_type, event.aggregate_id),
                Head(event.version or 0, event.id, event.type),
            )
        book.note_stored([event.id for event in events])
        done.published += events
        done.decided += [r for w in waiting for r in w.records]
        if tracing.enabled():
            done.parents.update((w.event.id, w.record.headers) for w in waiting)
        counts: dict[str, int] = {}
        for event in events:
            counts[event.aggregate_type] = counts.get(event.aggregate_type, 0) + 1
        for aggregate_type, count in counts.items():
            self._metrics.events_appended.labels(aggregate_type).inc(count)

    def _count_waits(self, before: Sequence[Waiting], after: list[Waiting], now: float) -> None:
        """Events that had waited and are decided now: how long they waited, and why."""
        left = {w.event.id for w in after}
        for w in before:
            waited = now - (w.deadline - self._config.wait_s)
            if w.event.id not in left and waited > 0.0005:
                outcome = "expired" if w.deadline <= now else "arrived"
                self._metrics.append_waits.labels(outcome).inc()
                self._metrics.append_wait.observe(waited)
