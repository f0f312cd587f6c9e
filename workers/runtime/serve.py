"""Serving one fleet process: build its Faust app with the agents and views of its roles, run, drain."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Collection
from typing import Any

from workers.roles.newfilter import keep_filter_ready
from workers.runtime.agents import register_agents
from workers.runtime.compose import Runtime
from workers.runtime.fleet import Fleet, ensure_catalog
from workers.runtime.http import register_views
from workers.runtime.lag import LAG_ROLE

log = logging.getLogger(__name__)


def build_fleet(
    runtime: Runtime, roles: Collection[str], *, app_id: str, projections: Collection[str] = ()
) -> Fleet:
    """The fleet of one process with the agents and HTTP views of ``roles``."""
    fleet = Fleet(runtime, roles, app_id=app_id, projections=projections)
    register_agents(fleet)
    register_views(fleet)
    return fleet


async def serve(
    runtime: Runtime,
    roles: Collection[str],
    *,
    app_id: str,
    on_started: Any = None,
    projections: Collection[str] = (),
) -> int:
    """Run the roles until SIGTERM/SIGINT (or ``fleet.stop()``), then drain; return the exit code."""
    try:
        if set(roles) - {LAG_ROLE}:  # the lag role reads whatever topics exist
            await ensure_catalog(runtime)
    except BaseException:
        await runtime.stop()
        raise
    fleet = build_fleet(runtime, roles, app_id=app_id, projections=projections)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, fleet.stop)
    fleet.health.start()
    await fleet.app.start()
    background: list[asyncio.Task[None]] = []
    if "commands" in fleet.roles:
        # Sync mode and storage writers store before they publish: repair what Kafka missed.
        relay_age_s = runtime.settings.kafka_timeout_ms / 1000 * 1.5 + 1
        background.append(asyncio.create_task(runtime.outbox.run(older_than_s=relay_age_s)))
        filter_kept = keep_filter_ready(runtime.marker, runtime.events, runtime.domains)
        background.append(asyncio.create_task(filter_kept))
    if fleet.audit_loop is not None:
        background.append(asyncio.create_task(fleet.audit_loop.run()))
    if fleet.lag is not None:
        fleet.lag.start()
    fleet.started = True
    if on_started is not None:
        await on_started(fleet)
    await fleet.stopped.wait()
    log.info("draining %s", ", ".join(sorted(fleet.roles)))
    for task in background:
        task.cancel()
    await fleet.drain()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    return fleet.exit_code
