"""Command handlers: load the aggregate, decide, save at the expected version, then publish."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from snapshot_rules.domain import Domain
from topics.envelope import Event
from topics.errors import ConcurrencyConflict, EventfleetError, StreamUnavailable
from workers.cqrs.aggregate import AggregateRoot
from workers.cqrs.commands import Command
from workers.cqrs.repository import Repository
from workers.metrics import Metrics
from workers.ports import AppendConflict
from workers.retries import Backoff
from workers.roles.append.outbox import Outbox

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Command)

Decide = Callable[[AggregateRoot, C], object]
"""Turns a command into events with ``aggregate.record(...)``; raises to refuse it."""


class Beaten(Exception):
    """Another writer stored the next version first (``conflict``): load again, decide again."""

    def __init__(self, conflict: AppendConflict) -> None:
        super().__init__(str(conflict))
        self.conflict = conflict


def conflict_retries(attempts: int) -> Backoff:
    """The tries of a command another writer beat: ``attempts`` in all, each after a wait drawn
    up to 2 ms doubling to 10 ms (full jitter: writers that collided do not collide again)."""
    return Backoff(first_s=0.002, max_s=0.01, attempts=attempts, full_jitter=True)


@dataclass(frozen=True, slots=True)
class Handled:
    """What a handled command left behind: the stored events, and whether Kafka has them yet."""

    events: tuple[Event, ...]
    published: bool  # False: stored and flagged; the outbox relay publishes them later
    duplicate: bool = False  # the command's event id was already stored: nothing new


class Publisher:
    """Produces just-stored events to events.stored, retrying briefly, never for long.

    Each attempt is bounded by the producer's own timeouts and is never cancelled: a
    cancelled send could still be delivered and then relayed a second time. When the
    budget runs out the attempt goes on in the background, so a late acknowledgement
    still clears the pending flag; otherwise the outbox relay publishes the events.
    """

    def __init__(self, outbox: Outbox, *, attempts: int = 3, budget_s: float = 1.0) -> None:
        if attempts < 1 or budget_s <= 0:
            raise ValueError("Publisher needs attempts >= 1 and budget_s > 0")
        self._outbox = outbox
        self._budget_s = budget_s
        # 0.05 s doubling, no wait begun that would end past the budget.
        self._retries = Backoff(0.05, math.inf, attempts, budget_s, strict_timeout=True)
        self._inflight: set[asyncio.Task[None]] = set()

    async def publish(self, events: Sequence[Event]) -> bool:
        """True once Kafka acknowledged every event; False if it did not within the budget."""
        deadline = asyncio.get_running_loop().time() + self._budget_s
        try:
            async for attempt in self._retries.tries(StreamUnavailable):
                with attempt:
                    return await self._attempt(events, deadline)
        except StreamUnavailable:
            return False
        raise AssertionError("stamina ended its tries without an answer or an error")

    async def _attempt(self, events: Sequence[Event], deadline: float) -> bool:
        """One send, awaited until ``deadline`` at most (then it goes on in the background)."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._outbox.publish(events))
        self._inflight.add(task)
        task.add_done_callback(self._finished)
        done, _ = await asyncio.wait({task}, timeout=max(deadline - loop.time(), 0.001))
        if not done:
            return False
        error = task.exception()
        if error is None:
            return True
        if isinstance(error, StreamUnavailable) or not isinstance(error, EventfleetError):
            raise error  # the first is tried again
        # The producer raises only StreamUnavailable: Kafka acknowledged, and only
        # clearing the flag failed. The relay will send a second copy, which
        # consumers drop by event id and version.
        log.warning("published, but the pending flag stays: %s", error)
        return True

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("background publish attempt failed: %s", task.exception())

    async def drain(self) -> None:
        """Wait for attempts still running in the background (on shutdown, and in tests)."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)


class AggregateHandler(Generic[C]):
    """Handles commands of one aggregate type the go.cqrs way, with optimistic concurrency.

    load (snapshot + tail) → ``decide`` records events on the aggregate → save at the
    expected version → publish. When another writer stored that version first, the whole
    cycle runs again on fresh state (so the rules are checked again), at most
    ``max_attempts`` times, then ConcurrencyConflict. A refused command, bad input or a
    store failure raises before anything is stored; nothing is produced unless stored.
    """

    def __init__(
        self,
        domain: Domain | Callable[[C], Domain],
        decide: Decide[C],
        *,
        repository: Repository,
        publisher: Publisher,
        metrics: Metrics | None = None,
        max_attempts: int = 5,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self._domain = domain
        self._decide = decide
        self._repository = repository
        self._publisher = publisher
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._retries = conflict_retries(max_attempts)

    async def __call__(self, command: C) -> Handled:
        domain = self._domain if isinstance(self._domain, Domain) else self._domain(command)
        try:
            return await self._retries.call(lambda num: self._once(domain, command, num), Beaten)
        except Beaten as beaten:
            raise ConcurrencyConflict(
                f"{domain.name} {command.aggregate_id}: {command.name} gave up after "
                f"{self._max_attempts} attempts; each time another writer stored the next "
                f"version first (last: version {beaten.conflict.failed.version}). Retry the "
                "request."
            ) from None

    async def _once(self, domain: Domain, command: C, attempt: int) -> Handled:
        """Load, decide, save and publish once; Beaten when another writer saved first."""
        aggregate = await self._repository.load(domain, command.aggregate_id)
        self._decide(aggregate, command)
        try:
            events = await self._repository.save(aggregate)
        except AppendConflict as e:
            if e.inserted:
                raise  # part of the command is stored: retrying would apply it twice
            if e.id_taken:  # ids are random unless derived from a command id: a retry
                stored = await self._repository.stored(e.failed.id)
                if stored is not None:
                    return Handled((stored,), published=True, duplicate=True)
            log.debug("%s, attempt %d of %d: %s", command.name, attempt, self._max_attempts, e)
            raise Beaten(e) from e
        if self._metrics is not None and events:
            self._metrics.events_appended.labels(domain.name).inc(len(events))
        published = await self._publisher.publish(events) if events else True
        return Handled(events, published)
