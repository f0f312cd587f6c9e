"""The ``EventScans`` capability, on every backend that claims it: whole-type reads in
(aggregate, version) order, counts and newest versions, and a store that does not answer."""

from __future__ import annotations

import asyncio
import random

from tests.waiting import within
from topics.errors import StoreUnavailable

from .backends import Backend, backend_claiming, history

backend = backend_claiming("scans")


async def test_scan_count_and_versions_cover_the_asked_types_in_order(backend: Backend) -> None:
    # More than one batch of a cursor (101), appended in a scrambled order.
    written = [
        *(e for i in range(30) for e in history(f"a{i:02}", 7, type="order")),
        *(e for i in range(5) for e in history(f"c{i}", 3, type="chat_room")),
        *history("x", 2, type="account"),
    ]
    scrambled = written[:]
    random.Random(5).shuffle(scrambled)
    for start in range(0, len(scrambled), 20):
        await backend.events.append(scrambled[start : start + 20])
    wanted = ["order", "chat_room"]
    expected = sorted(
        (e for e in written if e.aggregate_type in wanted),
        key=lambda e: (e.aggregate_type, e.aggregate_id, e.version),
    )
    scans = backend.scans
    assert [e async for e in scans.scan(wanted)] == expected
    assert await scans.count(wanted) == len(expected) == 225
    assert await scans.count(["account"]) == 2
    versions = await scans.versions(wanted)
    assert len(versions) == 35 and versions[("order", "a07")] == 7
    assert versions[("chat_room", "c4")] == 3 and ("account", "x") not in versions
    assert [e async for e in scans.scan([])] == []
    assert await scans.count([]) == 0 and await scans.versions([]) == {}
    assert await scans.count(["nothing-stored"]) == 0


async def test_each_scan_raises_store_unavailable_when_the_store_is_down(
    backend: Backend,
) -> None:
    await backend.events.append(history("u1", 2))
    async with backend.outage() as down:
        scans = Backend(backend.name, down, backend.outage).scans

        async def drained() -> int:
            return len([e async for e in scans.scan(["order"])])

        calls = [scans.count(["order"]), scans.versions(["order"]), drained()]
        results = await within(  # all at once: each waits out the client's bound
            asyncio.gather(*calls, return_exceptions=True), timeout_s=30, what="every call told"
        )
        for result in results:
            assert isinstance(result, StoreUnavailable) and result.retriable, result
    assert await backend.scans.count(["order"]) == 2  # and once it answers, all is there
