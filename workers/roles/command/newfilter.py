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
from workers.ports import EventStore, Marker

log = logging.getLogger(__name__)
CHUNK = 5000


async def rebuild_filter(marker: Marker, store: EventStore, domains: Domains) -> int:
    """Note every marked-mode aggregate the store holds, then mark the filter ready."""
    types = [d.name for d in domains if d.mode is Mode.ASYNC]
    refs = list(await store.versions(types)) if types else []
    keys = [f"{t}:{i}" for t, i in refs]
    for start in range(0, len(keys), CHUNK):
        await marker.note_aggregates(keys[start : start + CHUNK])
    await marker.mark_filter_ready()
    return len(keys)


async def keep_filter_ready(
    marker: Marker, store: EventStore, domains: Domains, *, interval_s: float = 5.0
) -> None:
    """Check now and every ``interval_s`` (with jitter); rebuild when not ready. Runs forever."""
    while True:
        try:
            if not await marker.filter_ready():
                await marker.forget_filter()  # no "certainly new" from a stale filter meanwhile
                noted = await rebuild_filter(marker, store, domains)
                log.info("the new-aggregate filter is ready: %d aggregates noted", noted)
        except Unavailable as e:
            log.warning("new-aggregate filter not checked: %s", e)
        await asyncio.sleep(interval_s * random.uniform(0.8, 1.2))
