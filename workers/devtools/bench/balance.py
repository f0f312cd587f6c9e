"""A group sharing its partitions after a member joins (issue 46): how long it takes and what
each member then holds, read from each member's ``eventfleet_assigned_partitions``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from workers.devtools.bench.procs import Server, alive


@dataclass(frozen=True, slots=True)
class Shared:
    """Seconds from a join until every member held ⌊P/N⌋ or ⌈P/N⌉ partitions, and what each held
    then (in the order the members started: the joiner last)."""

    seconds: float
    held: tuple[int, ...]

    def __str__(self) -> str:
        return f"join → shared {self.seconds:.1f} s, partitions {'/'.join(map(str, self.held))}"


def is_shared(held: Sequence[int], partitions: int) -> bool:
    """Every partition held, each member ⌊P/N⌋ or ⌈P/N⌉ of them."""
    n = len(held)
    low, high = partitions // n, -(-partitions // n)
    return sum(held) == partitions and all(low <= h <= high for h in held)


async def shared(
    members: Sequence[Server],
    *,
    role: str,
    topic: str,
    partitions: int,
    since: float,
    timeout_s: float = 120,
) -> Shared:
    """Wait until ``members`` share ``partitions`` of ``topic``; ``since``: the join (monotonic)."""
    series = re.compile(
        rf'^eventfleet_assigned_partitions\{{role="{re.escape(role)}",'
        rf'topic="{re.escape(topic)}"\}} (\S+)$',
        re.M,
    )
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            alive(list(members))
            held = await asyncio.gather(*(_held(session, m.url, series) for m in members))
            if is_shared(held, partitions):
                return Shared(time.monotonic() - since, tuple(held))
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{len(members)} members did not share {partitions} partitions of {topic} "
                    f"within {timeout_s:g} s of a join: they hold {held}"
                )
            await asyncio.sleep(0.1)


async def _held(session: aiohttp.ClientSession, url: str, series: re.Pattern[str]) -> int:
    """The partitions a member says it holds (0 when it does not answer or holds none yet)."""
    try:
        async with session.get(f"{url}/metrics") as response:
            found = series.search(await response.text())
    except (aiohttp.ClientError, TimeoutError):
        return 0
    return int(float(found.group(1))) if found else 0
