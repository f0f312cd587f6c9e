"""Archiving beside live writes on a running fleet: nothing lost, nothing doubled, reads the same."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fleet import FleetProcess, running_fleet, wait_for
from tests.tokens import TESTER
from workers.adapters.mongo import MongoStores
from workers.devtools.embedded import EmbeddedStack

RETAINED = "tests.integration.bad_domains:retained_chat"  # the chat room keeps 10 events hot


@pytest.fixture(scope="module")
async def retained_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    name = f"archive_{uuid.uuid4().hex[:8]}"
    async with running_fleet(stack, name, EVENTFLEET_DOMAINS=RETAINED) as process:
        yield process


async def send(fleet: FleetProcess, room: str, start: int, n: int) -> None:
    for i in range(start, start + n):
        data = {"message_id": f"m{i}", "sender_id": TESTER, "content": f"words {i}"}
        status, body = await fleet.post(
            f"/v1/chat_room/{room}/events", {"type": "MessageSent", "data": data}
        )
        assert status == 202, body


async def every_event(fleet: FleetProcess, room: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        status, page = await fleet.get(
            f"/v1/chat_room/{room}/events?after_version={after}&limit=37"
        )
        assert status == 200, page
        events += page["events"]
        if not page["more"]:
            return events
        after = page["next_after_version"]


async def archive(fleet: FleetProcess, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    env |= {k: v for k, v in fleet.env.items() if k.startswith("EVENTFLEET_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "archive", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_archiving_under_live_writes_loses_nothing_and_reads_the_same(
    retained_fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    fleet, room = retained_fleet, f"arch-{uuid.uuid4().hex[:8]}"
    await send(fleet, room, 0, 150)

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

    writes = asyncio.create_task(send(fleet, room, 150, 60))
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
