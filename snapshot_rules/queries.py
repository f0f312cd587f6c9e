"""Read routes a domain declares: a path and a pure async handler over a ``QueryContext``.

The runtime serves every enabled domain's queries on its HTTP API and hands each handler a
context that reads through the fleet's stores; a disabled domain's routes do not exist.
Handlers return a ``QueryAnswer`` or raise: InvalidInput (400), NotFound and
UnknownAggregateType (404), Unavailable (503).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from snapshot_rules.projection import ViewDoc
from snapshot_rules.replay import Folded
from topics.envelope import Event


class QueryContext(Protocol):
    """What a query handler may read: views, and the replayed state of any enabled domain."""

    async def view(self, projection: str, aggregate: tuple[str, str]) -> ViewDoc | None:
        """The view of ``aggregate`` in the named projection, or None."""
        ...

    async def has_events(self, aggregate: tuple[str, str]) -> bool: ...

    async def events_before(
        self,
        aggregate: tuple[str, str],
        *,
        before_version: int | None,
        limit: int,
        types: Sequence[str] | None = None,
    ) -> list[Event]:
        """Up to ``limit`` stored events below ``before_version`` (None: from the newest), newest
        first, only of ``types`` when given, each as the current schema version (upcast)."""
        ...

    async def latest(self, aggregate_type: str, aggregate_id: str) -> Folded:
        """The newest state (snapshot + tail, replayed); version 0 when there are no events."""
        ...

    async def state_at(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
    ) -> Folded:
        """The state at a version or a moment."""
        ...


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """A successful answer: HTTP status and JSON body, and the query parameters of the next page
    when the answer is one page of more (the runtime makes them a ``Link: <…>; rel="next"``)."""

    status: int
    body: Mapping[str, Any]
    next_page: Mapping[str, str] | None = None


QueryHandler = Callable[[QueryContext, Mapping[str, str], Mapping[str, str]], Awaitable[QueryAnswer]]
"""``handler(context, path_params, query_params)``."""


@dataclass(frozen=True, slots=True)
class Query:
    """``GET path`` (aiohttp route syntax, e.g. ``/v1/rooms/{room_id}/messages``) → ``handler``."""

    path: str
    handler: QueryHandler
