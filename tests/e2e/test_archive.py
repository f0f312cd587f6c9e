"""Archiving beside live writes on a running fleet: nothing lost, nothing doubled, reads the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.e2e.archiving import RETAINED, archive, every_event, send_messages
from tests.fleet import FleetProcess, running_fleet, wait_for
from workers.adapters.mongo import MongoStores
from workers.devtools.embedded import EmbeddedStack


@pytest.fixture(scope="module")
async def retained_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    name = f"archive_{uuid.uuid4().hex[:8]}"
    async with running_fleet(stack, name, EVENTFLEET_DOMAINS=RETAINED) as process:
        yield process


async def test_archiving_under_live_writes_loses_nothing_and_reads_the_same(
    retained_fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    fleet, room = retained_fleet, f"arch-{uuid.uuid4().hex[:8]}"
    await send_messages(fleet, room, 0, 150)

    async def stored(n: int) -> bool:
        status, body = await fleet.get(f"/v1/chat_room/{room}/state")
        return status == 200 and body["version"] == n

    await wait_for(lambda: stored(150), timeout_s=90, what="150 stored")  # /state saves a snapshot
    await wait_for(lambda: _snapshot_at(fleet, room, 100), timeout_s=60, what="the snapshot")
    before = await every_event(fleet, room)
    old_page = (
        await fleet.get(f"/v1/rooms/{room}/messages?source=replay&before_version=60&limit=20")
    )[1]
    at_40 = (await fleet.get(f"/v1/chat_room/{room}/state?at_version=40"))[1]

    writes = asyncio.create_task(send_messages(fleet, room, 150, 60))
    moved = await archive(fleet, "--batch", "25")
    await writes
    await wait_for(lambda: stored(210), timeout_s=90, what="210 stored")

    after = await every_event(fleet, room)
    assert [e["version"] for e in after] == list(range(1, 211))  # none lost, none twice
    assert after[:150] == before
    page = (await fleet.get(f"/v1/rooms/{room}/messages?source=replay&before_version=60&limit=20"))[
        1
    ]
    for field in ("messages", "before_version", "more"):  # an older page: the same messages
        assert page[field] == old_page[field]
    assert (await fleet.get(f"/v1/chat_room/{room}/state?at_version=40"))[1] == at_40
    stores = MongoStores(
        stack.urls.mongo_url, fleet.env["EVENTFLEET_MONGO_DATABASE"], timeout_ms=5000
    )
    try:
        hot = {e.id for e in await stores.events.select(("chat_room", room))}
        archived = {e.id for e in await stores.archive.select(("chat_room", room))}
    finally:
        await stores.close()
    print(f"archive under live writes: {moved.strip().splitlines()[-1]}; hot {len(hot)}, "
          f"archived {len(archived)}")  # fmt: skip
    assert len(archived) >= 100 and not hot & archived and len(hot | archived) == 210


async def _snapshot_at(fleet: FleetProcess, room: str, version: int) -> bool:
    status, body = await fleet.get(f"/v1/chat_room/{room}/snapshot")
    return status == 200 and body["version"] >= version
