"""Read routes a domain declares: a path and a pure async handler over a ``QueryContext``.

The runtime serves every enabled domain's queries on its HTTP API and hands each handler a
context that reads through the fleet's stores; a disabled domain's routes do not exist.
Handlers return a ``QueryAnswer`` or raise: InvalidInput (400), NotFound and
UnknownAggregateType (404), Unavailable (503).

A query names the path parameter that holds its aggregate's id (``aggregate_param``): the
door hands that id to the domain's read rule before the handler runs, so a rule written as
"rooms named alice-… are alice's" guards the query as it guards ``/events``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from snapshot_rules.projection import ViewDoc
from snapshot_rules.replay import Folded
from topics.envelope import Event
from topics.jsonvalue import Json


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
        after_version: int | None = None,
    ) -> list[Event]:
        """Up to ``limit`` stored events below ``before_version`` (None: from the newest) and
        above ``after_version`` (None: down to the first), newest first, only of ``types`` when
        given, each as the current schema version (upcast). Never across a hole: the events
        down to the first version that is gone (an archive that lost it); HistoryGone when the
        read starts at one, or, of ``types``, when any version of what it covered is gone."""
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
    body: Mapping[str, Json]
    next_page: Mapping[str, str] | None = None


QueryHandler = Callable[
    [QueryContext, Mapping[str, str], Mapping[str, str]], Awaitable[QueryAnswer]
]
"""``handler(context, path_params, query_params)``."""


INFERRED = "<inferred>"
"""``aggregate_param``'s default: ``aggregate_id`` when the path has it, else the path's only
parameter, else None (a path without parameters is about no single aggregate)."""

_PARAM = re.compile(r"\{([^{}:]+)(?::[^{}]*)?\}")


def path_params(path: str) -> list[str]:
    """The names of an aiohttp route path's parameters (``{name}`` or ``{name:regex}``)."""
    return [name.strip() for name in _PARAM.findall(path)]


@dataclass(frozen=True, slots=True)
class Query:
    """``GET path`` (aiohttp route syntax, e.g. ``/v1/rooms/{room_id}/messages``) → ``handler``.

    ``aggregate_param``: the path parameter holding the id of the one aggregate the query
    reads, which the domain's read rule sees; None for a query about no single aggregate (its
    read rule sees None). Left out: ``aggregate_id`` if the path has it, else its only
    parameter; a path with several others must name one. A name the path lacks fails here.
    """

    path: str
    handler: QueryHandler
    aggregate_param: str | None = INFERRED

    def __post_init__(self) -> None:
        resolved = _aggregate_param(self.path, self.aggregate_param)
        object.__setattr__(self, "aggregate_param", resolved)


def _aggregate_param(path: str, declared: str | None) -> str | None:
    params = path_params(path)
    if declared is None:
        return None
    if declared != INFERRED:
        if declared not in params:
            has = f"its parameters are {', '.join(params)}" if params else "it has no parameters"
            raise ValueError(
                f"query {path}: aggregate_param={declared!r} is not a parameter of its path "
                f"({has}); name the parameter that holds the aggregate id, e.g. "
                f"'/v1/rooms/{{{declared}}}/messages', or aggregate_param=None for a query "
                "about no single aggregate."
            )
        return declared
    if "aggregate_id" in params:
        return "aggregate_id"
    if len(params) <= 1:
        return params[0] if params else None
    raise ValueError(
        f"query {path}: its path has the parameters {', '.join(params)}; say which one holds "
        f"the aggregate id the read rule must see, e.g. aggregate_param={params[0]!r}, or "
        "aggregate_param=None for a query about no single aggregate."
    )
