"""Paging over one aggregate's history by version: every page says whether more exist and where
to continue, so a reader that follows it gets every event exactly once, never a silent cut-off.

A page is ``limit`` events after ``after_version``; ``more`` is true when the store held an event
beyond the page at the moment it was read, and ``next_after_version`` is where the next page
starts (the last event's version, or ``after_version`` itself on an empty page). Events appended
between pages are simply found by the next page: versions are contiguous and never rewritten.

No page skips a version. Versions are contiguous per aggregate (the store's guarantee), so a
jump means the versions between are stored nowhere any more (an archive that lost them, or was
dropped, ``workers.roles.ops.archive``): a page ends before such a hole (``more`` true), and a
read that starts at one raises ``HistoryGone`` naming ``whole_from``, the first version after
it (``workers.roles.history``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from topics.envelope import Event
from workers.ports import AggregateRef, EventStore
from workers.roles.history import whole_run

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class EventPage:
    """Up to ``limit`` events in version order, and where the next page starts."""

    events: list[Event]
    more: bool
    next_after_version: int


async def read_page(
    events: EventStore,
    aggregate: AggregateRef,
    *,
    after_version: int = 0,
    limit: int = DEFAULT_PAGE,
) -> EventPage:
    """One page: one read of ``limit + 1`` events, the extra one only telling whether more exist."""
    if limit < 1:
        raise ValueError(f"a page holds at least one event, not {limit}.")
    found = await events.select(aggregate, after=after_version, limit=limit + 1)
    page = list(whole_run(found, aggregate, after_version)[:limit])
    last = page[-1].version if page else None
    return EventPage(page, len(found) > len(page), last if last is not None else after_version)


async def read_all(
    events: EventStore, aggregate: AggregateRef, *, after_version: int = 0, page: int = MAX_PAGE
) -> AsyncIterator[Event]:
    """Every event after ``after_version``, in version order, read one bounded page at a time."""
    cursor = after_version
    while True:
        found = await read_page(events, aggregate, after_version=cursor, limit=page)
        for event in found.events:
            yield event
        if not found.more:
            return
        cursor = found.next_after_version


def next_link(path: str, params: Mapping[str, object]) -> str:
    """A ``Link`` header value naming the next page (RFC 8288), for ``path`` and its query."""
    return f'<{path}?{urlencode(params)}>; rel="next"'
