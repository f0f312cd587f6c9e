"""Archiving on a running fleet: the chat domains that keep 10 events hot, messages sent to a room,
every event of a room read back page by page, and ``eventfleet archive`` run against the fleet."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from tests.fleet import FleetProcess
from tests.tokens import TESTER
from tests.waiting import within

RETAINED = "tests.integration.bad_domains:retained_chat"  # the chat room keeps 10 events hot


async def send_messages(fleet: FleetProcess, room: str, start: int, n: int) -> None:
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
    out, err = await within(process.communicate(), timeout_s=120, what="eventfleet archive to exit")
    assert process.returncode == 0, err.decode()
    return out.decode()
