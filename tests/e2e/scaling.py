"""Appender processes scaled in and out of one group: one made on an 8-partition stack, its
events stored and published counted, and four joining a group that holds a backlog, timed
(the elasticity tests, and ``python -m tests.bench.elasticity``)."""

from __future__ import annotations

import time

import aiohttp

from tests.auditing import audit, errors
from tests.fleet import FleetProcess, metric
from tests.waiting import wait_for
from workers.adapters.mongo import connect, database
from workers.devtools.bench.append import chains, produce
from workers.devtools.embedded import EmbeddedStack, free_port

PARTITIONS = "8"
DRAIN_S = 6
START_BOUND_S = 90  # launch → first event published, each of four, on a loaded 2-core machine
COMMON = {
    "EVENTFLEET_PARTITIONS": PARTITIONS,
    "EVENTFLEET_DRAIN_TIMEOUT_S": str(DRAIN_S),
    "EVENTFLEET_LOG_LEVEL": "warning",
}


def appender(stack: EmbeddedStack, name: str) -> FleetProcess:
    process = FleetProcess.for_stack(stack, name, roles="appender", **COMMON)
    process.env["EVENTFLEET_HTTP_PORT"] = str(free_port())
    return process


async def stored_count(stack: EmbeddedStack, name: str) -> int:
    client = connect(stack.urls.mongo_url, timeout_ms=10_000)
    try:
        return await database(client, name)["events"].estimated_document_count()
    finally:
        await client.close()


async def published(process: FleetProcess) -> float:
    try:
        status, page = await process.get("/metrics")
    except (aiohttp.ClientError, OSError):
        return 0.0
    return metric(page, "eventfleet_events_published_total", mode="async") if status == 200 else 0.0


async def join_a_backlog(
    stack: EmbeddedStack, name: str, backlog: int
) -> tuple[list[float], list[float]]:
    """Four appenders join an 8-partition group holding ``backlog`` events; each is timed from
    its launch to ready (assigned) and to its first published event; all is stored once.
    Returns the seconds to ready and to the first event, sorted."""
    first = appender(stack, name)
    await first.start()  # creates the topics with 8 partitions, then leaves the group
    assert await first.stop(timeout_s=DRAIN_S + 5) == 0
    bootstrap = [stack.urls.kafka_url.removeprefix("kafka://")]
    events = chains(backlog, max(1, backlog // 20), "backlog")
    await produce(bootstrap, f"{name}.events", events)
    joining = [appender(stack, name) for _ in range(4)]
    launched = time.monotonic()
    ready_s: dict[int, float] = {}
    first_s: dict[int, float] = {}
    try:
        for process in joining:
            await process.launch()

        async def all_started() -> bool:
            for i, process in enumerate(joining):
                if i not in ready_s and await process.ready():
                    ready_s[i] = time.monotonic() - launched
                if i not in first_s and await published(process) > 0:
                    first_s[i] = time.monotonic() - launched
            return len(ready_s) == len(first_s) == len(joining)

        await wait_for(all_started, timeout_s=START_BOUND_S,
                       what="each of four appenders ready and publishing")  # fmt: skip

        async def backlog_stored() -> bool:
            return await stored_count(stack, name) >= backlog

        await wait_for(backlog_stored, timeout_s=300, what=f"{backlog} events stored")
        assert await stored_count(stack, name) == backlog
        for process in joining:
            assert await process.stop(timeout_s=DRAIN_S + 5) == 0, process.log_tail()
    finally:
        for process in joining:
            process.kill()
    report = await audit(stack, name, topics=False, views=False)
    assert errors(report) == []
    return sorted(ready_s.values()), sorted(first_s.values())
