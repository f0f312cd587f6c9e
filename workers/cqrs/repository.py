"""The repository: load an aggregate (snapshot + tail) and save its new events at the expected
version."""

from __future__ import annotations

from collections.abc import Sequence

from snapshot_rules.domain import Domain
from topics.envelope import Event
from topics.errors import TransactionsUnsupported
from workers.cqrs.aggregate import AggregateRoot
from workers.ports import AggregateRef, AtomicAppends, EventStore
from workers.roles.state import StateLoader


class Repository:
    """Aggregates from and to the event store; optimistic concurrency through the version index.

    ``atomic``: the store's appends across aggregates (``save_together``), where it has them.
    """

    def __init__(self, loader: StateLoader, *, atomic: AtomicAppends | None = None) -> None:
        self._loader = loader
        self._store: EventStore = loader.events
        self._atomic = atomic

    async def load(self, domain: Domain, aggregate_id: str) -> AggregateRoot:
        """The aggregate at its newest stored version.

        The state comes from StateLoader (snapshot + events after it, replayed; the state
        computed for the validation is saved as the snapshot as its policy allows,
        ``QuerySnapshots``). ``last_type`` is the type of the event at exactly the folded
        version: the newest replayed one, or one read when the snapshot is at the head.
        """
        folded, tail = await self._loader.latest_with_tail(
            domain, aggregate_id, trigger="validation"
        )
        last = tail[-1] if tail else None
        if folded.version > 0 and not tail:  # the snapshot is at the head: one more read
            found = await self._store.select(
                (domain.name, aggregate_id),
                after=folded.version - 1,
                before=folded.version + 1,
            )
            last = found[0] if found else None
        return AggregateRoot(
            domain,
            aggregate_id,
            folded=folded,
            last_type=last.type if last else None,
            last_id=last.id if last else None,
        )

    async def stored(self, event_id: str) -> Event | None:
        """The stored event with this id, if any (a retried command that was applied)."""
        return (await self._store.find([event_id])).get(event_id)

    async def found(self, ids: Sequence[str], refs: Sequence[AggregateRef]) -> dict[str, Event]:
        """The stored events among ``ids`` (of the aggregates ``refs``), by id."""
        return await self._store.find(ids, aggregates=refs)

    async def save(self, aggregate: AggregateRoot) -> tuple[Event, ...]:
        """Store the aggregate's changes, flagged for publishing; return them with their versions.

        The changes are numbered from ``original_version + 1``, so the expected version is
        implicit: if another writer stored that version first, the unique (aggregate,
        version) index refuses the write and AppendConflict is raised (nothing was stored
        when it stops at the first change, which is where a contiguous history stops it).
        StoreUnavailable propagates. The flag stays until the events reach events.stored
        (workers.roles.append.outbox), so a crash or a Kafka outage cannot lose them.
        """
        changes = aggregate.changes
        if not changes:
            return ()
        await self._store.append(changes, pending_publish=True)
        return aggregate.mark_saved()

    async def save_together(self, aggregates: Sequence[AggregateRoot]) -> tuple[Event, ...]:
        """Store the changes of every aggregate in one transaction, all or none, flagged for
        publishing; return them with their versions, aggregate by aggregate.

        As ``save``, each aggregate's expected version is implicit in its changes' numbers; a
        version or id taken anywhere raises AppendConflict with nothing stored (``inserted``
        0). TransactionsUnsupported when the store has no transactions (or none was given).
        """
        changes = [event for aggregate in aggregates for event in aggregate.changes]
        if not changes:
            return ()
        if self._atomic is None:
            raise TransactionsUnsupported(
                "this repository was built without the store's appends across aggregates "
                "(Repository(loader, atomic=store)); nothing was written."
            )
        await self._atomic.append_atomically(changes, pending_publish=True)
        return tuple(event for aggregate in aggregates for event in aggregate.mark_saved())
