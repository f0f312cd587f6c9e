"""A history read whole, or said to be broken: never a fold or a page across versions that are gone.

Versions are contiguous per aggregate, from 1, by the store's guarantee, so a read that finds
version ``N + 2`` where ``N + 1`` belongs knows ``N + 1`` is stored nowhere any more (archived
history that was lost or dropped, ``workers.roles.ops.archive``). Every reader of one aggregate's
history (pages, subscriptions, state, domain queries) checks what it read here: one comparison
when nothing is missing; ``HistoryGone`` names ``whole_from``, the first version after the hole.
"""

from __future__ import annotations

from collections.abc import Sequence

from topics.envelope import Event
from topics.errors import HistoryGone
from workers.ports import AggregateRef, EventStore


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
