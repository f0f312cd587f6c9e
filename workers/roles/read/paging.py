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
it. The check costs one comparison when nothing is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from topics.envelope import Event
from topics.errors import HistoryGone
from workers.ports import AggregateRef, EventStore

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


def whole_run(
    events: Sequence[Event], aggregate: AggregateRef, after_version: int
) -> Sequence[Event]:
    """The events (in version order, after ``after_version``) that continue it without a hole:
    all of them, unless versions are gone in between; HistoryGone when the first one does not
    continue it. One comparison when nothing is missing."""
    if not events:
        return events
    first = events[0].version or 0
    if first != after_version + 1:
        raise history_gone(aggregate, after_version, first)
    if (events[-1].version or 0) == after_version + len(events):
        return events
    for i, event in enumerate(events):
        if event.version != first + i:
            return events[:i]
    return events


def whole_run_desc(
    events: Sequence[Event], aggregate: AggregateRef, *, below: int
) -> Sequence[Event]:
    """``whole_run`` for a read newest first below version ``below``: the events down to the
    first hole; HistoryGone when the read itself starts below one (``below - 1`` is gone while
    an older version is stored). ``below`` is at most the newest version + 1."""
    if not events:
        return events
    first = events[0].version or 0
    if first != below - 1:
        raise history_gone(aggregate, first, below)
    if (events[-1].version or 0) == below - len(events):
        return events
    for i, event in enumerate(events):
        if event.version != first - i:
            return events[:i]
    return events


def check_whole(events: Sequence[Event], aggregate: AggregateRef, after_version: int) -> None:
    """HistoryGone when ``events`` (in version order) do not continue ``after_version`` whole."""
    run = whole_run(events, aggregate, after_version)
    if len(run) < len(events):
        raise history_gone(aggregate, run[-1].version or 0, events[len(run)].version or 0)


async def check_resumable(events: EventStore, aggregate: AggregateRef, after_version: int) -> None:
    """HistoryGone when the version after ``after_version`` is gone while later ones are stored
    (one read of one event): a subscription refuses to start in a hole rather than jump it."""
    whole_run(
        await events.select(aggregate, after=after_version, limit=1), aggregate, after_version
    )


def history_gone(aggregate: AggregateRef, after_version: int, whole_from: int) -> HistoryGone:
    """The versions after ``after_version`` and below ``whole_from`` are stored nowhere."""
    aggregate_type, aggregate_id = aggregate
    first, last = after_version + 1, whole_from - 1
    gone = f"version {first} is" if first == last else f"versions {first} to {last} are"
    return HistoryGone(
        f"{aggregate_type} {aggregate_id}: {gone} stored nowhere any more (archived history "
        f"that was lost or dropped), so the events after version {after_version} cannot all "
        f"be read; read on from version {whole_from} (after_version={whole_from - 1}); the "
        "aggregate's state (GET .../state) still folds what its snapshot covers.",
        after_version=after_version,
        whole_from=whole_from,
    )


def next_link(path: str, params: Mapping[str, object]) -> str:
    """A ``Link`` header value naming the next page (RFC 8288), for ``path`` and its query."""
    return f'<{path}?{urlencode(params)}>; rel="next"'
