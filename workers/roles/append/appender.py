"""The appender: judge each requested event at the store, number it, insert, publish, answer.

Called by the appender agent with batches of ``events`` records. Each event is checked
against its domain (data schema) and against the aggregate's last *stored* event with the
same transition table the command side uses (``workers.roles.append.judge``) and, with identity on
(``judge_access``), against the domain's access rules that declare a store check, with the
event's ``metadata.actor`` and the state at its predecessor; one that does not fit is refused:
dead-lettered with its reason, recorded for ``GET .../outcome``, answered on
``commands.replies``, and its mark repaired. Events are stored in the order they were
validated; an event whose predecessor is still on its way waits for it, up to a bound.

``handle`` and ``expire`` return the records whose fate is decided (stored, refused or
dead-lettered): the agent acks exactly those. A waiting record stays unacked, so a crash
redelivers it; the store's unique ids make every redelivery harmless. Any Unavailable error
leaves the batch to be retried whole.

The work is split by concern: ``intake`` (decoding and the checks that need no store),
``deciding`` (heads, lookups, the judge, the insert), ``effects`` (refusals, dead letters,
publishing), ``parking`` (aggregates held behind what cannot be stored), over one ``book``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence

from snapshot_rules.domain import Domains
from workers.metrics import Metrics
from workers.ports import (
    Record,
)
from workers.roles.append.book import AppenderConfig, Book, refs_of
from workers.roles.append.deciding import Decider
from workers.roles.append.effects import Effects
from workers.roles.append.fates import DeadLetterFates
from workers.roles.append.given import AppendStores, Replies
from workers.roles.append.intake import Intake
from workers.roles.append.parking import Parking, Sorted
from workers.roles.deadletter import DeadLetters


class Appender:
    """Turns requested events into stored, contiguous, versioned ones, or refuses them."""

    def __init__(
        self,
        *,
        stores: AppendStores,
        replies: Replies,
        dead_letters: DeadLetters,
        domains: Domains,
        metrics: Metrics,
        config: AppenderConfig,
        fates: DeadLetterFates | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.judge_access and stores.loader is None:
            raise ValueError("the appender judges access at the store only with a state loader")
        self._metrics = metrics
        self._config = config
        self._clock = clock
        self._book = book = Book()
        self._intake = Intake(book=book, domains=domains, metrics=metrics, config=config)
        self._decider = Decider(
            book=book, stores=stores, domains=domains, metrics=metrics, config=config
        )
        self._effects = Effects(
            book=book,
            rejections=stores.rejections,
            replies=replies,
            dead_letters=dead_letters,
            metrics=metrics,
            config=config,
            fates=fates,
        )
        # None: a dead letter parks nothing (as before parking)
        self._parking = (
            None
            if stores.parked is None
            else Parking(
                book=book,
                parked=stores.parked,
                metrics=metrics,
                config=config,
                intake=self._intake,
                decider=self._decider,
                effects=self._effects,
                clock=clock,
            )
        )
        self._lock = asyncio.Lock()
        # Revocations that came while a batch or a tick held the lock: applied when it ends.
        self._revoked_meanwhile: list[Collection[int] | None] = []

    # --- the agent's entry points ----------------------------------------------------------

    async def handle(self, records: Sequence[Record]) -> list[Record]:
        """Take a batch; return the records decided now (waiting ones are returned later).

        Safe to call again with the same records after it raised (the agent retries while a
        dependency is down): a record already waiting here is not taken twice, and a record
        is returned only once its event is stored, refused or dead-lettered.
        """
        started = time.perf_counter()
        self._effects.started_ns = time.time_ns()
        book = self._book
        async with self._turn():
            await self._effects.finish_unfinished()
            finished = {(r.partition, r.offset) for r in book.ready}
            records = [r for r in records if (r.partition, r.offset) not in finished]
            taken = self._intake.take(records)
            left = Sorted(taken.letters, taken.fresh, taken.copies)
            if self._parking is not None:
                left = await self._parking.park(left)
            letters, fresh, copies, urgent = left.letters, left.fresh, left.copies, left.urgent
            now = self._clock()
            for event, record in fresh:
                deadline = now if event.id in urgent else now + self._config.wait_s
                book.wait(event, record, deadline)
            for event, record in copies:
                book.attach_copy(event, record)
            refs = refs_of(fresh) + refs_of(copies)
            done = await self._decider.decide(list(dict.fromkeys(refs)), now)
            done.refused += taken.refused
            await self._effects.finish(done, letters)
            if urgent and self._parking is not None:
                # Decided, and kept before the release can fail: a record held back past a gap
                # came with an earlier call, so no batch the agent retries would return it.
                book.hold_ready(done.decided)
                done.decided = []
                # a parked head's replay was judged: release what waits behind it
                replayed = {e.key.decode() for e, _ in fresh if e.id in urgent}
                await self._parking.release_parked(now, keys=replayed)
            decided = book.take_ready()
        self._metrics.append_batch_size.observe(len(records))
        self._metrics.append_latency.observe(time.perf_counter() - started)
        return decided + [letter.record for letter in letters] + done.decided + left.parked

    async def expire(self) -> list[Record]:
        """Judge the events whose wait is over (called on a timer); return the records decided."""
        book = self._book
        async with self._turn():
            self._effects.started_ns = time.time_ns()
            await self._effects.finish_unfinished()
            now = self._clock()
            refs = []
            if self._parking is not None:
                if self._parking.poll_due():
                    await self._parking.release_parked(now)
                if self._parking.held_back:
                    refs = await self._parking.park_held_back(now)
            due = list(dict.fromkeys(book.due(now) + refs))
            if not due:
                return book.take_ready()
            done = await self._decider.decide(due, now)
            await self._effects.finish(done, [])
            return book.take_ready() + done.decided

    def assign(self, partitions: Collection[int]) -> None:
        """The events topic's partitions assigned here now: their parked aggregates are released
        by this process (``revoked`` partitions are dropped through ``forget``)."""
        if self._parking is not None:
            self._parking.assign(partitions)

    def hold_past_gaps(self, gap_below: Callable[[int, int], bool]) -> None:
        """``gap_below(partition, offset)``: an offset below it has not reached this process yet
        (dropped on the way, and being redelivered). An event whose record lies past such a
        gap waits on after its deadline: its predecessor may be in the gap, and judging it on
        the head without it would refuse, or reorder, a valid event."""
        self._book.set_gap_check(gap_below)

    def holds_work(self) -> bool:
        """Whether a tick (``expire``) may have anything to do: an event waiting, a failed
        round to finish, or decided records not yet returned. An idle appender skips its ticks."""
        parking = self._parking
        return self._book.holds_work() or (parking is not None and parking.holds_work())

    def waiting(self) -> int:
        return self._book.count_waiting()

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One batch or tick at a time; a revocation that came meanwhile applies at its end."""
        async with self._lock:
            try:
                yield
            finally:
                while self._revoked_meanwhile:
                    self._forget_now(self._revoked_meanwhile.pop(0))

    def forget(self, partitions: Collection[int] | None = None) -> None:
        """Partitions were revoked (None: all): drop their waiting records and every head.

        Their records stay unacked and go to the partition's next owner, which may write
        to the same aggregates, so no cached head can be trusted any longer. An event also
        carried by a record of a partition kept here stays, held by that record. While a
        batch is being decided (a rebalance comes at any await), the batch's own state is
        left alone and the revocation is applied when the batch ends: dropping its waiting
        queues under it would fail it (KeyError) and stop the process.
        """
        # At once, not deferred: an assignment that follows must not be undone by it.
        if self._parking is not None:
            self._parking.revoke(partitions)
        if self._lock.locked():
            self._revoked_meanwhile.append(None if partitions is None else set(partitions))
            return
        self._forget_now(partitions)

    def _forget_now(self, partitions: Collection[int] | None) -> None:
        self._book.forget(partitions)
        if self._parking is not None:  # undecided: the partition's next owner takes them again
            self._parking.forget(partitions)
