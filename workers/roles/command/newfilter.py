"""Keeping the marker's new-aggregate filter ready: note every aggregate the store holds.

A command for an aggregate without a mark must ask the store for its last event, unless the
filter says "certainly new". The appender notes each aggregate when it stores its first
event; this loop (in every commands process) rebuilds the filter from the store whenever it
is not ready (a fresh Redis, a flush, or another run of the server: a restart from a dump or
a failover may have lost recent notes), and then marks it ready.
"""

from __future__ import annotations

import asyncio
import logging
import random

from snapshot_rules.domain import Domains, Mode
from topics.errors import Unavailable
from workers.ports import Marker, ScannableEvents

log = logging.getLogger(__name__)
CHUNK = 5000


async def rebuild_filter(marker: Marker, store: ScannableEvents, domains: Domains) -> int:
    """Note every marked-mode aggregate the store holds, then mark the filter ready."""
    types = [d.name for d in domains if d.mode is Mode.ASYNC]
    refs = list(await store.versions(types)) if types else []
    keys = [f"{t}:{i}" for t, i in refs]
    for start in range(0, len(keys), CHUNK):
        await marker.note_aggregates(keys[start : start + CHUNK])
    await marker.mark_filter_ready()
    return len(keys)


async def keep_filter_ready(
    marker: Marker,
    store: ScannableEvents,
    domains: Domains,
    *,
    interval_s: float = 5.0,
    longest_s: float = 300.0,
) -> None:
    """Check now and every ``interval_s`` (with jitter); rebuild when not ready. Runs forever.

    After a failed check or rebuild the next one waits twice as long, up to ``longest_s``: a
    rebuild reads every aggregate of the store, and one that failed on a store too slow for it
    tried again every 5 s kept that store busy with its reads (the abandoned ones too)."""
    failures = 0
    while True:
        failed: Unavailable | None = None
        try:
            if not await marker.filter_ready():
                await marker.forget_filter()  # no "certainly new" from a stale filter meanwhile
                noted = await rebuild_filter(marker, store, domains)
                log.info("the new-aggregate filter is ready: %d aggregates noted", noted)
            failures = 0
        except Unavailable as e:
            failed, failures = e, failures + 1
        wait_s = retry_after(failures, interval_s=interval_s, longest_s=longest_s)
        if failed is not None:
            log.warning("new-aggregate filter not checked: %s; next try in %.0f s", failed, wait_s)
        await asyncio.sleep(wait_s * random.uniform(0.8, 1.2))


def retry_after(failures: int, *, interval_s: float, longest_s: float) -> float:
    """The wait before the next check after ``failures`` failed ones in a row: ``interval_s``
    after none, doubled after each, never over ``longest_s``."""
    return min(interval_s * (1 << min(failures, 32)), max(longest_s, interval_s))
