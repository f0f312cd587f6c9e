"""An idle, healthy ``eventfleet dev`` logs no ERROR and no WARNING, also past Faust's livelock timers.

Faust's livelock detector (every 2.5 commit intervals) calls a partition "not processing" once
``stream_processing_timeout`` has passed with the partition's end beyond its position and no
stream reading it. The snapshotter's rule table writes its changelog and no stream reads it: if
that changelog counted as an acking topic, every changelog partition that had a write logged a
five-line ERROR each tick, five minutes after start. The test shortens the timeout through
Faust's own variable and watches a window several ticks past it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import aiohttp
import orjson

from tests.e2e.dev_runs import PREFIX, Dev, post, start_dev
from tests.waiting import wait_for
from workers.runtime.settings.services import Kafka

STREAM_TIMEOUT_S = 2.0
LIVELOCK_TICK_S = 2.5 * Kafka().kafka_commit_interval_ms / 1000  # Faust: 2.5 commit intervals
LEVEL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+)\s")


def levels(log: Path, since: str = "") -> Counter[str]:
    """Log lines by level (continuation lines of a multi-line record are not counted), of the
    lines stamped at or after ``since`` (the log's own ``YYYY-MM-DD HH:MM:SS,mmm`` stamps)."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        match = LEVEL.match(line)
        if match and line[:23] >= since:
            found[match.group(1)] += 1
    return found


async def stored_version(dev: Dev, order: str) -> int:
    headers = {"Authorization": f"Bearer {dev.exports['EVENTFLEET_TOKEN']}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{dev.api}/v1/order/{order}/state") as response,
    ):
        if response.status != 200:
            return 0
        return int(orjson.loads(await response.read())["version"])


async def test_an_idle_fleet_past_the_livelock_timeout_logs_no_error_or_warning(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "tmp"
    dev = await start_dev(
        workdir,
        env={"EVENTFLEET_TOPIC_PREFIX": f"quiet{PREFIX}", "STREAM_PROCESSING_TIMEOUT": "2"},
    )
    try:
        placed = {"type": "OrderPlaced", "data": {"items": [{"sku": "t", "qty": 1, "price": 1}]}}
        orders = [f"quiet-{n}" for n in range(12)]  # enough to write every changelog partition
        for order in orders:
            assert await post(dev, f"/v1/order/{order}/events", placed) == 202

        async def all_stored() -> bool:
            versions = await asyncio.gather(*(stored_version(dev, o) for o in orders))
            return all(v == 1 for v in versions)

        await wait_for(all_stored, timeout_s=60, what="every order stored")
        # The observation window itself (nothing to wait *for*: the point is that nothing comes):
        # several livelock ticks past the shortened stream timeout, counted from now, when the
        # changelog partitions already hold the rule states the snapshotter wrote.
        # What the start said (a record redelivered on a loaded machine, say) is not the
        # question: the window is.
        quiet_from = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:23]
        quiet_until = time.monotonic() + STREAM_TIMEOUT_S + 4 * LIVELOCK_TICK_S
        while time.monotonic() < quiet_until:
            assert dev.process.returncode is None
            await asyncio.sleep(0.5)
    finally:
        code = await dev.stop()
    log = workdir.parent / f"{workdir.name}.log"
    assert levels(log)["INFO"] > 0, log.read_text()  # the counting sees the log's lines
    counted = levels(log, since=quiet_from)
    assert counted["ERROR"] == 0 and counted["WARNING"] == 0, log.read_text()
    assert code == 130  # stopped with Ctrl-C
