"""Sync mode: validate on the latest state, number, store, and only then publish.

One client of the CQRS API (``workers.cqrs``): ``append`` hands an AppendEvent command to its
handler, which loads the aggregate (snapshot + tail), lets the domain's state validator decide,
stores the event at the next version with optimistic concurrency and then produces it to
events.stored. Every failure raises; see ``SyncCommands.append``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from snapshot_rules.domain import Domain, Mode
from topics.envelope import Metadata
from topics.errors import EventfleetError
from topics.jsonvalue import Json
from workers.cqrs.aggregate import AggregateRoot
from workers.cqrs.commands import AppendEvent
from workers.cqrs.handlers import AggregateHandler, Publisher
from workers.cqrs.repository import Repository
from workers.cqrs.together import TogetherHandler
from workers.metrics import Metrics
from workers.ports import AppendItem, RefusedItem, SyncResult, SyncResults
from workers.roles.append.outbox import Outbox


class SyncCommands:
    """The sync-mode command service; the HTTP view and application code call ``append``."""

    def __init__(
        self,
        *,
        repository: Repository,
        outbox: Outbox,
        metrics: Metrics,
        max_attempts: int = 5,
        publish_attempts: int = 3,
        publish_budget_s: float = 1.0,
    ) -> None:
        self._publisher = Publisher(outbox, attempts=publish_attempts, budget_s=publish_budget_s)
        self._together = TogetherHandler(
            repository=repository,
            publisher=self._publisher,
            metrics=metrics,
            max_attempts=max_attempts,
        )
        self._handler = AggregateHandler(
            _domain_of,
            _append,
            repository=repository,
            publisher=self._publisher,
            metrics=metrics,
            max_attempts=max_attempts,
        )

    async def append(
        self,
        domain: Domain,
        aggregate_id: str,
        event_type: str,
        data: Mapping[str, Json],
        metadata: Metadata,
        *,
        event_id: str | None = None,
        data_checked: bool = False,
        expected_version: int | None = None,
    ) -> SyncResult:
        """Append one event to a sync-mode aggregate and return it stored, with its version.

        Raises, storing and producing nothing: UnknownEventType / InvalidEventData /
        InvalidEnvelope (bad input), StateRejected (the validator refused it; ``current``
        is the last event type), WrongExpectedVersion (the aggregate is not at
        ``expected_version``, also once another writer stored it first: checked before the
        rules, on every attempt), ConcurrencyConflict (other writers kept winning the
        version), StoreUnavailable. After the store accepted the event, a Kafka outage
        does not raise: the result says ``published=False`` and the relay repairs it.
        ``data_checked``: the caller checked the data already (it is checked once).
        """
        if domain.mode is not Mode.SYNC:
            raise ValueError(f"{domain.name} is an {domain.mode} domain; SyncCommands is for sync")
        if not data_checked:
            domain.check_data(event_type, data)  # bad input fails before any read
        command = AppendEvent(
            aggregate_id=aggregate_id,
            metadata=metadata,
            domain=domain,
            event_type=event_type,
            data=data,
            event_id=event_id,
            expected_version=expected_version,
        )
        handled = await self._handler(command)
        return SyncResult(handled.events[0], handled.published, handled.duplicate)

    async def append_many(
        self, items: Sequence[AppendItem], metadata: Metadata, *, data_checked: bool = False
    ) -> SyncResults:
        """Append one event to each of several sync-mode aggregates, all stored or none.

        See ``SyncAppender.append_many``. Bad input of an item (its type, its data) raises
        RefusedItem before any read; so does the first item its aggregate refuses, before
        anything is stored. After the store committed, a Kafka outage does not raise: the
        result says ``published=False`` and the relay publishes every event later.
        """
        check_items(items)
        if not data_checked:
            for index, item in enumerate(items):
                try:
                    item.domain.check_data(item.event_type, item.data)
                except EventfleetError as e:
                    raise RefusedItem(index, e) from e
        handled = await self._together(items, metadata)
        return SyncResults(handled.events, handled.published, handled.duplicate)

    async def drain(self) -> None:
        """Wait for publish attempts that outlived their answer (call on shutdown)."""
        await self._publisher.drain()


def check_items(items: Sequence[AppendItem]) -> None:
    """ValueError for what no caller may ask: no item, an item of a domain that is not sync,
    or two items of one aggregate (the request's parser tells its sender so first)."""
    if not items:
        raise ValueError("append_many needs at least one item")
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item.domain.mode is not Mode.SYNC:
            raise ValueError(
                f"{item.domain.name} is an {item.domain.mode} domain; append_many is for sync"
            )
        if item.ref in seen:
            raise ValueError(f"two items of {item.domain.name} {item.aggregate_id}; one each")
        seen.add(item.ref)


def _domain_of(command: AppendEvent) -> Domain:
    return command.domain


def _append(aggregate: AggregateRoot, command: AppendEvent) -> None:
    aggregate.record(
        command.event_type,
        command.data,
        metadata=command.metadata,
        event_id=command.event_id,
        data_checked=True,  # checked before the aggregate was loaded
        expected_version=command.expected_version,
    )
