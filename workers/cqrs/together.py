"""Appends to several aggregates at once (sync mode): load each, decide each on its own state,
store every event in one transaction (all or none), then publish them in one produce."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from topics.envelope import Event, Metadata
from topics.errors import CommandReused, ConcurrencyConflict, EventfleetError
from workers.cqrs.aggregate import AggregateRoot
from workers.cqrs.handlers import Beaten, Handled, Publisher, conflict_retries
from workers.cqrs.repository import Repository
from workers.metrics import Metrics
from workers.ports import AppendConflict, AppendItem, RefusedItem

log = logging.getLogger(__name__)


class TogetherHandler:
    """One multi-aggregate append, with optimistic concurrency on every aggregate at once.

    load every aggregate (snapshot + tail) → record each item on its aggregate (the domain's
    rules, the item's expected version) → store all the changes in one transaction → publish.
    When another writer stored one of the versions first, nothing was stored and the whole
    cycle runs again on fresh state (each item checked again), at most ``max_attempts`` times,
    then ConcurrencyConflict. An item its aggregate refuses raises RefusedItem before anything
    is stored.
    """

    def __init__(
        self,
        *,
        repository: Repository,
        publisher: Publisher,
        metrics: Metrics | None = None,
        max_attempts: int = 5,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self._repository = repository
        self._publisher = publisher
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._retries = conflict_retries(max_attempts)

    async def __call__(self, items: Sequence[AppendItem], metadata: Metadata) -> Handled:
        try:
            return await self._retries.call(lambda num: self._once(items, metadata, num), Beaten)
        except Beaten as beaten:
            raise ConcurrencyConflict(
                f"an append to {len(items)} aggregates gave up after {self._max_attempts} "
                f"attempts; each time another writer stored one of their next versions first "
                f"(last: {_named(beaten.conflict)}). Nothing was written; retry the request."
            ) from None

    async def _once(self, items: Sequence[AppendItem], metadata: Metadata, attempt: int) -> Handled:
        """Load, decide, save and publish once; Beaten when another writer saved first."""
        aggregates = await asyncio.gather(
            *(self._repository.load(item.domain, item.aggregate_id) for item in items)
        )
        try:
            decide(items, aggregates, metadata)
        except RefusedItem:
            # A retry of a request that was stored finds its aggregates past it (its own
            # events moved them): the store's copies answer it, as a duplicate.
            stored = await self.stored(items)
            if stored is None:
                raise
            return Handled(stored, published=True, duplicate=True)
        try:
            events = await self._repository.save_together(aggregates)
        except AppendConflict as e:
            if e.id_taken:  # ids are random unless derived from a command id: a retry
                stored = await self.stored(items)
                if stored is not None:
                    return Handled(stored, published=True, duplicate=True)
            log.debug("append to %d aggregates, attempt %d: %s", len(items), attempt, e)
            raise Beaten(e) from e
        if self._metrics is not None:
            for event in events:
                self._metrics.events_appended.labels(event.aggregate_type).inc()
        return Handled(events, await self._publisher.publish(events))

    async def stored(self, items: Sequence[AppendItem]) -> tuple[Event, ...] | None:
        """The items' events as stored, in their order, when every one of them is (a retry
        of a request that was applied); None when none is. CommandReused when only some are:
        their ids name events of an earlier request with the same command id."""
        ids = [item.event_id for item in items if item.event_id is not None]
        if not ids:
            return None
        found = await self._repository.found(ids, [item.ref for item in items])
        if not found:
            return None
        if len(found) == len(items) == len(ids):
            return tuple(found[event_id] for event_id in ids)
        stored = [item for item in items if item.event_id in found]
        missing = [item for item in items if item.event_id not in found]
        raise CommandReused(
            f"the command id was used before for {_listed(stored)} and not for "
            f"{_listed(missing)}: a retry sends exactly the items it sent before. Nothing was "
            "written; send new work under a new command id."
        )


def decide(
    items: Sequence[AppendItem], aggregates: Sequence[AggregateRoot], metadata: Metadata
) -> None:
    """Record each item's event on its aggregate; the first it refuses raises RefusedItem."""
    for index, (item, aggregate) in enumerate(zip(items, aggregates, strict=True)):
        try:
            aggregate.record(
                item.event_type,
                item.data,
                metadata=metadata,
                event_id=item.event_id,
                data_checked=True,
                expected_version=item.expected_version,
            )
        except EventfleetError as e:  # the rules, the expected version, an id that is no UUID
            raise RefusedItem(index, e) from e


def _listed(items: Sequence[AppendItem]) -> str:
    named = ", ".join(f"{item.domain.name} {item.aggregate_id}" for item in items[:3])
    return named + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _named(conflict: AppendConflict | None) -> str:
    if conflict is None:
        return "?"
    failed = conflict.failed
    return f"{failed.aggregate_type} {failed.aggregate_id} version {failed.version}"
