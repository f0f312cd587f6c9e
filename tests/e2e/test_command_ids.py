"""Command ids belong to their sender (issue 33, row 3), and a refusal at the door is remembered
under its command id (issue 34, item 5), tried as an attacker would.

One fleet with identity on (``jwt``) serves ``tests/e2e/owned_rooms.py``: the chat room whose
rooms ``alice-…`` only alice reads (anyone may post a note there), the open order domain
(async) and the account domain (sync). A second fleet runs with ``EVENTFLEET_AUTH=none``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.fleet import FleetProcess, order_items, running_fleet
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack

DOMAINS = {"EVENTFLEET_DOMAINS": "tests.e2e.owned_rooms:domains"}


@pytest.fixture(scope="module")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    async with running_fleet(stack, f"cmd_{uuid.uuid4().hex[:8]}", **DOMAINS) as process:
        yield process


def uid() -> str:
    return uuid.uuid4().hex[:8]


def note(text: str, command_id: str) -> dict[str, Any]:
    return {
        "type": "MessageSent",
        "command_id": command_id,
        "data": {"message_id": f"m-{uid()}", "content": text},
    }


async def send(
    fleet: FleetProcess, who: str, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    status, answer = await fleet.post(path, body, token=fleet.token(who, ()))
    return status, answer


async def outcome(
    fleet: FleetProcess, who: str, path: str, command_id: str
) -> tuple[int, dict[str, Any]]:
    status, body = await fleet.get(
        f"{path}/outcome?command_id={command_id}", token=fleet.token(who, ())
    )
    return status, body


async def test_bob_reusing_carols_command_id_sends_his_own_command(fleet: FleetProcess) -> None:
    room = f"/v1/chat_room/alice-{uid()}"
    command_id = f"c-{uid()}"
    status, carols = await send(fleet, "carol", f"{room}/events", note("from carol", command_id))
    assert status == 202 and "duplicate" not in carols, carols

    status, bobs = await send(fleet, "bob", f"{room}/events", note("from bob", command_id))
    assert status == 202, bobs
    assert "duplicate" not in bobs and bobs["event_id"] != carols["event_id"], (carols, bobs)
    assert carols["event_id"] not in orjson.dumps(bobs).decode()  # nothing of the first leaks

    alice = fleet.token("alice", ())

    async def both_stored() -> bool:
        status, body = await fleet.get(f"{room}/events", token=alice)
        return status == 200 and len(body["events"]) == 2

    await wait_for(both_stored, timeout_s=30, what="carol's and bob's notes stored")
    _, body = await fleet.get(f"{room}/events", token=alice)
    senders = {e["data"]["sender_id"]: e["id"] for e in body["events"]}
    assert senders == {"carol": carols["event_id"], "bob": bobs["event_id"]}
    versions = {e["id"]: e["version"] for e in body["events"]}

    # Each sender's retry is still the idempotent duplicate of its own command, and only that.
    for who, first in (("carol", carols), ("bob", bobs)):
        status, again = await send(fleet, who, f"{room}/events", note(f"again {who}", command_id))
        assert status == 202 and again.get("duplicate") is True, (who, again)
        assert again["event_id"] == first["event_id"], (who, again)
        assert again.get("version") in (None, versions[first["event_id"]]), (who, again)


async def test_a_sync_command_id_is_its_senders_too(fleet: FleetProcess) -> None:
    account = f"/v1/account/a-{uid()}"
    opened = {"type": "AccountOpened", "command_id": "s-1", "data": {"owner": "carol"}}
    status, carols = await send(fleet, "carol", f"{account}/events", opened)
    assert status == 201 and carols["version"] == 1, carols
    deposit = {"type": "MoneyDeposited", "command_id": "s-1", "data": {"amount": 5}}
    status, bobs = await send(fleet, "bob", f"{account}/events", deposit)
    assert status == 201 and "duplicate" not in bobs, bobs  # stored: bob's own command
    assert bobs["version"] == 2 and bobs["event_id"] != carols["event_id"], bobs
    status, again = await send(fleet, "carol", f"{account}/events", opened)
    assert status == 201 and again["duplicate"] is True, again
    assert (again["event_id"], again["version"]) == (carols["event_id"], 1), again
    # The outcome query answers each sender of s-1 about their own command only.
    status, body = await outcome(fleet, "carol", account, "s-1")
    assert (status, body["outcome"], body["version"]) == (200, "stored", 1), body
    status, body = await outcome(fleet, "bob", account, "s-1")
    assert (status, body["outcome"], body["version"]) == (200, "stored", 2), body
    status, body = await outcome(fleet, "dave", account, "s-1")
    assert status == 404 and body["outcome"] == "none", body


async def test_the_outcome_of_anothers_command_is_that_of_a_command_never_sent(
    fleet: FleetProcess,
) -> None:
    order = f"/v1/order/o-{uid()}"
    placed = {"type": "OrderPlaced", "command_id": "c-1", "data": {"items": order_items()}}
    status, carols = await send(fleet, "carol", f"{order}/events", placed)
    assert status == 202, carols

    async def stored() -> bool:
        status, body = await outcome(fleet, "carol", order, "c-1")
        return status == 200 and body["outcome"] == "stored"

    await wait_for(stored, timeout_s=30, what="carol's order stored")
    status, theirs = await outcome(fleet, "bob", order, "c-1")
    never_status, never = await outcome(fleet, "bob", order, "never-sent")
    assert (status, never_status) == (404, 404), (theirs, never)
    assert theirs["outcome"] == never["outcome"] == "none"
    assert theirs["error"] == never["error"] == "not_found"
    assert carols["event_id"] not in orjson.dumps(theirs).decode()
    assert "version" not in theirs
    # alice, who reads her room, asks of bob's note there by his command id: none.
    room = f"/v1/chat_room/alice-{uid()}"
    status, bobs = await send(fleet, "bob", f"{room}/events", note("psst", "n-1"))
    assert status == 202, bobs
    status, body = await outcome(fleet, "alice", room, "n-1")
    assert status == 404 and body["outcome"] == "none", body
    # bob may not ask in alice's room at all: he may not read it.
    status, body = await outcome(fleet, "bob", room, "n-1")
    assert status == 403 and body["reason"] == "read_refused", body


async def test_a_refusal_at_the_door_is_the_commands_outcome(fleet: FleetProcess) -> None:
    order = f"/v1/order/o-{uid()}"
    paid = {"type": "OrderPaid", "command_id": "c-1", "data": {"amount": 5}}
    status, refused = await send(fleet, "carol", f"{order}/events", paid)
    assert status == 409 and refused["error"] == "transition_rejected", refused

    status, body = await outcome(fleet, "carol", order, "c-1")
    assert status == 200, body
    assert body["outcome"] == "rejected" and body["reason"] == "transition_rejected", body
    assert body["message"] == refused["message"] and body["command_id"] == "c-1"
    # Another principal, and a command id never sent: none, alike.
    for who, command_id in (("bob", "c-1"), ("carol", "c-2")):
        status, body = await outcome(fleet, who, order, command_id)
        assert status == 404 and body["outcome"] == "none", (who, command_id, body)

    # A retry is judged again (the refusal is no recorded answer): once the order is placed,
    # the same command is accepted, and its outcome is that, not the old refusal.
    placed = {"type": "OrderPlaced", "command_id": "c-0", "data": {"items": order_items()}}
    assert (await send(fleet, "carol", f"{order}/events", placed))[0] == 202

    async def accepted() -> bool:
        status, _ = await send(fleet, "carol", f"{order}/events", paid)
        return status == 202

    await wait_for(accepted, timeout_s=30, what="the retried payment accepted")
    status, body = await outcome(fleet, "carol", order, "c-1")
    assert status == 200 and body["outcome"] in ("accepted", "stored"), body


async def test_forbidden_and_sync_refusals_are_remembered_for_their_sender(
    fleet: FleetProcess,
) -> None:
    room = f"/v1/chat_room/bob-{uid()}"
    forged = note("as alice", "f-1")
    forged["data"]["sender_id"] = "alice"
    status, refused = await send(fleet, "bob", f"{room}/events", forged)
    assert status == 403 and refused["reason"] == "not_your_identity", refused
    status, body = await outcome(fleet, "bob", room, "f-1")
    assert (status, body["outcome"], body["reason"]) == (200, "rejected", "forbidden"), body
    assert body["message"] == refused["message"]

    account = f"/v1/account/a-{uid()}"
    withdraw = {"type": "MoneyWithdrawn", "command_id": "w-1", "data": {"amount": 5}}
    status, refused = await send(fleet, "carol", f"{account}/events", withdraw)
    assert status == 409 and refused["error"] == "transition_rejected", refused
    status, body = await outcome(fleet, "carol", account, "w-1")
    assert (status, body["outcome"], body["reason"]) == (200, "rejected", "transition_rejected")
    assert body["message"] == refused["message"]
    status, body = await outcome(fleet, "bob", account, "w-1")
    assert status == 404 and body["outcome"] == "none", body


async def test_bad_outcome_queries_change_nothing(fleet: FleetProcess) -> None:
    order = f"/v1/order/o-{uid()}"
    for query, code in (
        ("", "bad_request"),  # neither command_id nor event_id
        ("?command_id=a&event_id=b", "bad_request"),
        ("?command_id=" + "x" * 257, "bad_request"),
    ):
        status, body = await fleet.get(f"{order}/outcome{query}", token=fleet.token("carol", ()))
        assert status == 400 and body["error"] == code, (query, body)
    status, body = await fleet.get("/v1/nope/o-1/outcome?command_id=c", token=fleet.token())
    assert status == 404 and body["error"] == "unknown_aggregate_type", body


async def test_without_identity_every_caller_is_one_principal(stack: EmbeddedStack) -> None:
    """``EVENTFLEET_AUTH=none``: one anonymous principal, so a command id is everyone's."""
    env = {**DOMAINS, "EVENTFLEET_AUTH": "none"}
    async with running_fleet(stack, f"cmdnone_{uid()}", **env) as open_fleet:
        order = f"/v1/order/o-{uid()}"
        placed = {"type": "OrderPlaced", "command_id": "c-1", "data": {"items": order_items()}}
        status, first = await open_fleet.post(f"{order}/events", placed)
        assert status == 202, first
        status, again = await open_fleet.post(f"{order}/events", placed)
        assert status == 202 and again["duplicate"] is True, again
        assert again["event_id"] == first["event_id"]
        paid = {"type": "OrderShipped", "command_id": "c-2", "data": {"carrier": "x"}}
        status, refused = await open_fleet.post(f"{order}/events", paid)
        assert status == 409, refused
        status, body = await open_fleet.get(f"{order}/outcome?command_id=c-2")
        assert (status, body["outcome"], body["reason"]) == (200, "rejected", refused["error"])
