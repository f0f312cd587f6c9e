"""``eventfleet projections rebuild NAME``: recompute a projection's views while the fleet runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from snapshot_rules.declaration import did_you_mean
from snapshot_rules.domain import Domains
from snapshot_rules.projection import Projection
from topics.errors import UnknownProjection
from workers.roles.read.projections import rebuild_views
from workers.runtime.compose import Runtime
from workers.runtime.loading import load_domains
from workers.runtime.settings import Settings


def projection_named(domains: Domains, name: str) -> Projection:
    projections = domains.projections()
    try:
        return projections[name]
    except KeyError:
        raise UnknownProjection(
            f"no projection is named {name!r}{did_you_mean(name, projections)}; known: "
            f"{', '.join(sorted(projections)) or 'none (no enabled domain declares one)'}."
        ) from None


async def rebuild(runtime: Runtime, name: str, *, progress: Callable[[int, int], None]) -> int:
    """Rebuild projection ``name`` from the event store; returns the number of views built."""
    projection = projection_named(runtime.domains, name)
    return await rebuild_views(
        projection,
        events=runtime.events,
        views=runtime.views(projection.collection),
        staging=runtime.staging(projection.collection),
        metrics=runtime.metrics,
        progress=progress,
        upcast=runtime.domains.upcast,
    )


def progress_printer(name: str, stream: TextIO = sys.stderr) -> Callable[[int, int], None]:
    """A ``progress`` callback that redraws one line: ``rebuilding NAME: done/total events``."""

    def show(done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        end = "\n" if done >= total else ""
        print(f"\rrebuilding {name}: {done}/{total} events ({percent}%)", end=end, file=stream)
        stream.flush()

    return show


async def run_rebuild(settings: Settings, name: str) -> int:
    """Rebuild with progress on stderr; return the exit code."""
    projection_named(load_domains(settings.domains), name)  # fail before any connection
    async with Runtime.running(settings, roles=()) as runtime:  # the store: views only
        views = await rebuild(runtime, name, progress=progress_printer(name))
    print(f"rebuilt {name}: {views} views")
    return 0
