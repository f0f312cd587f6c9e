"""The domains' read routes, served: a QueryContext over the fleet's stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from snapshot_rules.domain import Domains
from snapshot_rules.projection import ViewDoc
from snapshot_rules.queries import Query, QueryAnswer
from snapshot_rules.replay import Folded
from topics.envelope import Actor, Event
from topics.errors import EventfleetError, NotFound
from workers.http.edge.params import check_plus_signs
from workers.http.ryw import ReadAfter, WaitingContext, WriteWaiter
from workers.ports import AggregateRef, EventStore, ViewStore
from workers.roles.history import history_gone, whole_run_desc
from workers.roles.state import StateLoader
from workers.runtime.answers import Answer, failure

__all__ = ["FirstHot", "FleetQueries", "answer", "answer_page", "failure"]
"""``failure`` lives in ``workers.runtime.answers``; it is offered here too for the console's
views, which import it from here."""

FirstHot = Callable[[AggregateRef], Awaitable[int | None]]
"""The lowest version the hot collection holds (``TieredEvents.first_hot``): below it, history
is archived and may have holes; from it to the newest it is whole."""


class FleetQueries:
    """A ``QueryContext`` reading through the fleet's event store, views and state loader.

    No read crosses a hole in history (``workers.roles.read.paging``): an unfiltered read ends
    before one, or raises HistoryGone when it starts at one; a read filtered by type cannot see
    a hole by its versions, so the archived part of what it covered (below ``first_hot``) is
    read unfiltered once and must be whole.
    """

    def __init__(
        self,
        *,
        domains: Domains,
        loader: StateLoader,
        events: EventStore,
        views: Mapping[str, ViewStore],
        first_hot: FirstHot | None = None,
    ) -> None:
        self._domains = domains
        self._loader = loader
        self._events = events
        self._views = views
        self._first_hot = first_hot

    async def view(self, projection: str, aggregate: AggregateRef) -> ViewDoc | None:
        store = self._views.get(projection)
        if store is None:
            raise NotFound(f"projection {projection!r} is not enabled in this fleet.")
        return await store.load(aggregate)

    async def has_events(self, aggregate: AggregateRef) -> bool:
        return bool(await self._events.heads([aggregate]))

    async def events_before(
        self,
        aggregate: AggregateRef,
        *,
        before_version: int | None,
        limit: int,
        types: Sequence[str] | None = None,
        after_version: int | None = None,
    ) -> list[Event]:
        stored: Sequence[Event] = await self._events.select(
            aggregate,
            after=after_version,
            before=before_version,
            desc=True,
            limit=limit,
            types=types,
        )
        if types is None:
            stored = await self._whole_desc(aggregate, stored, before_version)
        else:
            low = (stored[-1].version or 0) if len(stored) == limit else (after_version or 0) + 1
            await self._check_archived(aggregate, low, before_version)
        return [self._domains.upcast(event) for event in stored]

    async def _whole_desc(
        self, aggregate: AggregateRef, stored: Sequence[Event], before_version: int | None
    ) -> Sequence[Event]:
        """``stored`` (newest first) down to its first hole; HistoryGone when it starts below one
        (the newest version is read only then: a read below a version past it is no hole)."""
        if not stored:
            return stored
        first = stored[0].version or 0
        below = first + 1 if before_version is None else before_version
        if first < below - 1:
            head = (await self._events.heads([aggregate])).get(aggregate)
            below = min(below, (head.version if head is not None else 0) + 1)
        return whole_run_desc(stored, aggregate, below=below)

    async def _check_archived(
        self, aggregate: AggregateRef, low: int, before_version: int | None
    ) -> None:
        """HistoryGone when a version from ``low`` up to ``before_version`` (exclusive) is gone:
        only the part below the first hot version can be (read unfiltered, only then)."""
        if self._first_hot is None:
            return
        first_hot = await self._first_hot(aggregate)
        end = (
            first_hot
            if before_version is None or first_hot is None
            else min(before_version, first_hot)
        )
        if end is None or low >= end:
            return
        archived = [
            e.version or 0 for e in await self._events.select(aggregate, after=low - 1, before=end)
        ]
        if len(archived) == end - low:
            return
        gone = end - 1  # the highest version missing
        for version in reversed(archived):
            if version != gone:
                break
            gone -= 1
        below = [v for v in archived if v < gone]
        raise history_gone(aggregate, below[-1] if below else low - 1, gone + 1)

    async def latest(self, aggregate_type: str, aggregate_id: str) -> Folded:
        return await self._loader.latest(self._domains.get(aggregate_type), aggregate_id)

    async def state_at(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
    ) -> Folded:
        domain = self._domains.get(aggregate_type)
        return await self._loader.exactly_at(domain, aggregate_id, version=version, as_of=as_of)


async def answer(
    query: Query,
    context: FleetQueries,
    params: Mapping[str, str],
    query_params: Mapping[str, str],
    waiter: WriteWaiter | None = None,
) -> Answer:
    """Run a domain's query handler; its errors become their answers (``failure``).

    With ``waiter``, ``min_version``/``command_id`` and ``wait_ms`` make it read its writes.
    """
    found, _ = await answer_page(query, context, params, query_params, waiter)
    return found


async def answer_page(
    query: Query,
    context: FleetQueries,
    params: Mapping[str, str],
    query_params: Mapping[str, str],
    waiter: WriteWaiter | None = None,
    *,
    actor: Actor | None = None,
) -> tuple[Answer, Mapping[str, str] | None]:
    """``answer``, and the query parameters of the next page when the handler names one
    (a ``command_id`` to wait for is ``actor``'s own)."""
    try:
        check_plus_signs(query_params)
        after = ReadAfter.parse(query_params) if waiter is not None else None
        if after is not None:
            after = replace(after, actor=actor)
        ctx = context if after is None or waiter is None else WaitingContext(context, waiter, after)
        found: QueryAnswer = await query.handler(ctx, params, _without_wait(query_params))
    except EventfleetError as e:
        return failure(e), None
    return Answer(found.status, found.body), found.next_page


_WAIT_PARAMS = frozenset({"min_version", "command_id", "wait_ms"})


def _without_wait(query: Mapping[str, str]) -> Mapping[str, str]:
    """The query a handler sees: the read-your-writes parameters are the fleet's, not its own."""
    if not _WAIT_PARAMS & query.keys():
        return query
    return {name: value for name, value in query.items() if name not in _WAIT_PARAMS}
