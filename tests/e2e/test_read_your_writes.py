"""Read your writes over HTTP: a read right after its appends names what it must see, and waits."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.test_projections import post_all
from tests.fleet import LIFECYCLE, FleetProcess


async def post_lifecycle(fleet: FleetProcess, order: str, *, command_ids: bool = False) -> None:
    for n, (kind, data) in enumerate(LIFECYCLE):
        body = {"type": kind, "data": data}
        if command_ids:
            body["command_id"] = f"{order}-c{n}"
        status, answer = await fleet.post(f"/v1/order/{order}/events", body)
        assert status == 202, answer


async def test_state_right_after_the_appends_answers_the_version_asked_for(
    fleet: FleetProcess,
) -> None:
    order = f"ryw-{uuid.uuid4().hex[:8]}"
    await post_lifecycle(fleet, order)
    wanted = len(LIFECYCLE)
    status, body = await fleet.get(f"/v1/order/{order}/state?min_version={wanted}&wait_ms=20000")
    assert status == 200, body
    assert body["version"] == wanted and body["state"]["status"] == "delivered"
    status, body = await fleet.get(f"/v1/order/{order}/events?min_version={wanted}&wait_ms=20000")
    assert status == 200 and [e["version"] for e in body["events"]] == [1, 2, 3, 4]


async def test_a_command_id_waits_for_that_commands_event(fleet: FleetProcess) -> None:
    order = f"ryw-{uuid.uuid4().hex[:8]}"
    await post_lifecycle(fleet, order, command_ids=True)
    last = f"{order}-c{len(LIFECYCLE) - 1}"
    status, body = await fleet.get(f"/v1/order/{order}/state?command_id={last}&wait_ms=20000")
    assert status == 200, body
    assert body["version"] == len(LIFECYCLE)
    status, body = await fleet.get(f"/v1/order/{order}/events?command_id={order}-c0&wait_ms=20000")
    assert status == 200 and body["events"][0]["metadata"]["command_id"] == f"{order}-c0"


async def test_a_version_not_stored_within_the_bound_is_504_with_what_is_stored(
    fleet: FleetProcess,
) -> None:
    order = f"ryw-{uuid.uuid4().hex[:8]}"
    await post_lifecycle(fleet, order)
    await fleet.get(f"/v1/order/{order}/state?min_version=4&wait_ms=20000")
    status, body = await fleet.get(f"/v1/order/{order}/state?min_version=9&wait_ms=50")
    assert status == 504, body
    assert body["error"] == "not_yet_stored"
    assert body["stored_version"] == 4 and body["wanted_version"] == 9
    assert "wait_ms=50" in body["message"]
    # A command never sent is not waited on forever either.
    status, body = await fleet.get(f"/v1/order/{order}/events?command_id=never&wait_ms=30")
    assert status == 504 and body["error"] == "not_yet_stored", body
    assert "outcome?command_id=never" in body["message"]


async def test_an_aggregate_with_nothing_stored_waits_then_504s(fleet: FleetProcess) -> None:
    status, body = await fleet.get(
        f"/v1/order/none-{uuid.uuid4().hex[:6]}/state?min_version=1&wait_ms=0"
    )
    assert status == 504 and body["stored_version"] == 0, body


async def test_a_view_route_waits_until_its_view_folded_the_version(fleet: FleetProcess) -> None:
    room = f"ryw-room-{uuid.uuid4().hex[:6]}"
    steps = [
        ("MessageSent", {"message_id": f"r{n}", "sender_id": "ann" if n % 2 else "bob",
                         "content": f"hi {n}"})
        for n in range(6)
    ]  # fmt: skip
    await post_all(fleet, room, steps)  # each message sent with its sender's token
    wanted = len(steps)
    status, body = await fleet.get(
        f"/v1/rooms/{room}/messages?limit=2&min_version={wanted}&wait_ms=20000"
    )
    assert status == 200, body
    assert body["version"] == wanted and body["source"] == "view"
    assert len(body["messages"]) == 2  # the route's own parameters still apply


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("min_version=0", "min_version=0 must be between 1"),
        ("min_version=x", "min_version='x' must be a whole number"),
        ("min_version=%2B3", "must be a whole number"),
        ("min_version=2&wait_ms=30001", "wait_ms=30001 must be between 0 and 30000"),
        ("min_version=2&wait_ms=-1", "must be a whole number"),
        ("min_version=2&command_id=c", "not both"),
        ("wait_ms=100", "give one of them"),
        ("command_id=", "command_id must be 1 to 200 characters"),
        (f"command_id={'c' * 201}", "command_id must be 1 to 200 characters"),
    ],
)
async def test_bad_read_your_writes_parameters_are_400(
    fleet: FleetProcess, query: str, named: str
) -> None:
    for path in ("/v1/order/o-1/state", "/v1/order/o-1/events", "/v1/rooms/r-1/messages"):
        status, body = await fleet.get(f"{path}?{query}")
        assert status == 400, (path, body)
        assert body["error"] == "bad_request" and named in body["message"], (path, body)
