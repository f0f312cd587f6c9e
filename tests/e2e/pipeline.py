"""The pipeline as a client drives it over HTTP: events sent to a running fleet (an order through
its lifecycle, a chat room's steps each as its sender) and read back once stored."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fleet import LIFECYCLE, FleetProcess
from tests.waiting import wait_for

Step = tuple[str, dict[str, Any]]
"""An event to send: its type and its data."""


async def stored_events(
    fleet: FleetProcess, aggregate: str, aggregate_id: str
) -> list[dict[str, Any]]:
    status, body = await fleet.get(f"/v1/{aggregate}/{aggregate_id}/events?limit=1000")
    return body["events"] if status == 200 else []


async def wait_stored(
    fleet: FleetProcess, aggregate: str, expected: dict[str, int], timeout_s: float = 60
) -> None:
    async def all_stored() -> bool:
        counts = await asyncio.gather(*(stored_events(fleet, aggregate, i) for i in expected))
        return [len(c) for c in counts] == list(expected.values())

    await wait_for(all_stored, timeout_s=timeout_s, what=f"{sum(expected.values())} stored events")


async def drive_order(fleet: FleetProcess, order_id: str, cancel: bool) -> int:
    steps = list(LIFECYCLE)
    if cancel:
        steps = [steps[0], steps[1], ("OrderCancelled", {"reason": "changed mind"})]
    for event_type, data in steps:
        status, body = await fleet.post(
            f"/v1/order/{order_id}/events", {"type": event_type, "data": data}
        )
        assert status == 202, body
        assert set(body) == {"event_id", "partition", "offset"}
    return len(steps)


async def post_all(fleet: FleetProcess, room: str, steps: list[Step]) -> None:
    for kind, data in steps:
        status, body = await fleet.post(
            f"/v1/chat_room/{room}/events", {"type": kind, "data": data},
            token=fleet.token(data["sender_id"], ()),  # each message sent as its sender
        )  # fmt: skip
        assert status == 202, (kind, body)
