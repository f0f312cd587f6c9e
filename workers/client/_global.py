"""The global read's calls without I/O: a page of every stored event from a position, the walk
over the pages, and the subscription that follows it (on ``_live``'s ``Feed``). Each event is
handed out with the position right after it, and each (aggregate, version) once per walk or
subscription: the log may carry an event twice (republished after an appender's crash)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeAlias

from workers.client._base import ArgumentError
from workers.client._live import Feed
from workers.client._wire import Call, Op, Query, Steps, relay
from workers.client.models import Event, GlobalEvent, GlobalPage

__all__ = ["Names", "Seen", "global_events", "global_page", "subscribe_all"]

Names: TypeAlias = "str | Sequence[str]"
"""One name, or several (sent comma-separated)."""


def global_page(
    after: str = "",
    *,
    limit: int = 100,
    aggregate_types: Names = (),
    event_types: Names = (),
    id_prefix: str = "",
) -> Op[GlobalPage]:
    """``GET /v1/events``: one page of at most ``limit`` (1-1000) stored events of every
    aggregate after the position ``after`` ('' : from the beginning), in the log's order (each
    aggregate's in version order), kept by the filters and the caller's read rules; ``more``
    and ``next`` name the next page. A position of another fleet, altered or cut short raises
    ``BadRequestError``; one the fleet's log cannot continue from ``PositionOutdatedError``
    (read again from the beginning)."""
    query = global_query(after, aggregate_types, event_types, id_prefix)
    answer = yield Call("GET", "/v1/events", query | {"limit": str(limit)})
    return answer.decode(GlobalPage)


def global_events(
    after: str = "",
    *,
    page_size: int = 100,
    aggregate_types: Names = (),
    event_types: Names = (),
    id_prefix: str = "",
) -> Steps[GlobalEvent]:
    """Every stored event after ``after`` across aggregates, page after page until ``more``
    is false, each with the position right after it (``GlobalEvent``): keep it with what you
    built, and pass it as ``after`` to go on from there. Each (aggregate, version) once per
    walk: a copy the log carries twice (republished after a crash) is dropped."""
    global_query(after, aggregate_types, event_types, id_prefix)  # refused now, not later

    def page(position: str) -> Op[GlobalPage]:
        return global_page(
            position,
            limit=page_size,
            aggregate_types=aggregate_types,
            event_types=event_types,
            id_prefix=id_prefix,
        )

    return _walk_global(page, after)


def _walk_global(page: Callable[[str], Op[GlobalPage]], after: str) -> Steps[GlobalEvent]:
    seen = Seen()
    page_op = page(after)
    while True:
        found = yield from relay(page_op)
        for event, position in zip(found.events, found.positions, strict=True):
            if seen.first(event):
                yield GlobalEvent(position, event)
        if not found.more:
            return
        page_op = page(found.next)


class Seen:
    """The highest version handed out per aggregate (the newest ``remembered``): an event at
    or below it is a copy the log carries again (a republish after an appender's crash)."""

    def __init__(self, remembered: int = 100_000) -> None:
        self._highest: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._remembered = remembered

    def first(self, event: Event) -> bool:
        ref = (event.aggregate_type, event.aggregate_id)
        if self._highest.get(ref, 0) >= event.version:
            return False
        self._highest[ref] = event.version
        self._highest.move_to_end(ref)
        if len(self._highest) > self._remembered:
            self._highest.popitem(last=False)
        return True


def global_query(after: str, aggregate_types: Names, event_types: Names, id_prefix: str) -> Query:
    query: Query = {"after": after} if after else {}
    for name, given in (("aggregate_type", aggregate_types), ("event_type", event_types)):
        names = [given] if isinstance(given, str) else list(given)
        if any(not n or "," in n for n in names):
            raise ArgumentError(
                f"{name}s {names!r}: each is one non-empty name without commas; pass a list "
                "for several."
            )
        if names:
            query[name] = ",".join(names)
    if id_prefix:
        query["id_prefix"] = id_prefix
    return query


def subscribe_all(
    after: str = "",
    *,
    aggregate_types: Names = (),
    event_types: Names = (),
    id_prefix: str = "",
) -> Feed[GlobalEvent]:
    """``GET /v1/events/subscribe``: the global read from the position ``after`` ('' : the
    beginning), then each event as it is stored, for as long as it is iterated; each with the
    position right after it (``GlobalEvent``), which is the message's id, so a reconnect
    resumes after the last one taken (as ``subscribe`` does). The filters and read rules of
    ``global_events`` apply; each (aggregate, version) once per subscription."""
    seen = Seen()

    def made(sse_id: str | None, event: Event) -> GlobalEvent | None:
        return GlobalEvent(sse_id or "", event) if seen.first(event) else None

    query = global_query(after, aggregate_types, event_types, id_prefix)
    return Feed("/v1/events/subscribe", query, made)
