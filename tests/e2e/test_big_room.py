"""A room of 5,000 messages of 4 KB (20 MB: past MongoDB's 16 MB document limit, so a snapshot or
view that kept every message could not be stored) stays small in its snapshot and view and pages
back through the store; a state the store cannot take parks one aggregate, never the fleet."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.auditing import audit, errors
from tests.e2e.hoarding import domains as hoarding_domains
from tests.fleet import FleetProcess, running_fleet
from tests.kafka_topics import read_until
from tests.waiting import wait_for
from topics.envelope import Event, new_event
from workers.adapters.mongo import MongoEventStore, connect, database
from workers.devtools.embedded import EmbeddedStack

ROOM_SIZE = 5_000
CONTENT = "x" * 4000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sender(n: int) -> str:
    return "ann" if n % 2 else "bob"


def messages(room: str, count: int) -> list[Event]:
    def message(n: int) -> Event:
        data = {"message_id": f"m{n}", "sender_id": sender(n), "content": f"{n}:{CONTENT}"[:4000]}
        at = T0 + timedelta(milliseconds=n)
        return new_event("chat_room", room, "MessageSent", data, version=n, occurred_at=at)

    return [message(n) for n in range(1, count + 1)]


async def store_directly(stack: EmbeddedStack, name: str, events: Sequence[Event]) -> None:
    """Into the fleet's event store as the appender would have stored them, in bulk."""
    client = connect(stack.urls.mongo_url, timeout_ms=60_000)
    try:
        store = MongoEventStore(database(client, name))
        await store.ensure_indexes()
        for start in range(0, len(events), 500):
            await store.append(events[start : start + 500])
    finally:
        await client.close()


async def posted(
    fleet: FleetProcess, path: str, kind: str, data: dict[str, Any], *roles: str
) -> None:
    # A chat message is sent as its sender, with roles from the token; anything else as the tester.
    token = fleet.token(data["sender_id"], roles) if "sender_id" in data else None
    status, body = await fleet.post(path, {"type": kind, "data": data}, token=token)
    assert status == 202, body


def ids(body: dict[str, Any]) -> list[str]:
    return [m["message_id"] for m in body["messages"]]


async def test_a_room_of_5000_messages_of_4kb(stack: EmbeddedStack, unique_name: str) -> None:
    await store_directly(stack, unique_name, messages("big", ROOM_SIZE))
    # No mark for this room: the first append reads its last event, which SecantusDB finds by
    # decoding all of them (seconds on a busy machine, past the 5 s default; MongoDB walks the
    # index). The bound is the surrogate's, not the product's.
    async with running_fleet(stack, unique_name, EVENTFLEET_MONGO_TIMEOUT_MS="30000") as fleet:
        path = "/v1/chat_room/big/events"
        await posted(
            fleet,
            path,
            "MessageSent",
            {"message_id": f"m{ROOM_SIZE + 1}", "sender_id": "cy", "content": "new"},
        )
        await posted(
            fleet,
            path,
            "MessageEdited",
            {"message_id": "m5", "sender_id": "ann", "content": "fixed"},
        )
        await posted(
            fleet, path, "MessageDeleted", {"message_id": "m6", "sender_id": "zoe"}, "moderator"
        )
        await posted(
            fleet, path, "MessageDeleted", {"message_id": "m7", "sender_id": "bob"}
        )  # not bob's

        async def view_at_head() -> bool:
            # From the view itself: a room whose view is missing is answered from replay, at
            # the head at once, while the view may still be folding 5,000 events behind it.
            status, body = await fleet.get("/v1/rooms/big/messages?limit=1&source=view")
            return status == 200 and body["source"] == "view" and body["version"] == ROOM_SIZE + 4

        await wait_for(view_at_head, timeout_s=180, what=f"the chat view of {ROOM_SIZE + 4} events")

        async def snapshotted() -> bool:
            status, body = await fleet.get("/v1/chat_room/big/snapshot")
            return status == 200 and body["version"] >= ROOM_SIZE

        # The rule (every 100 events) snapshots the room at its first new event, unless the
        # appender, folding the room to judge an edit, saved one at 5,000 first: either is
        # within the rule's 100 events of the head.
        await wait_for(snapshotted, timeout_s=180, what="the snapshot of the big room")
        _, snapshot = await fleet.get("/v1/chat_room/big/snapshot")
        assert len(orjson.dumps(snapshot["state"])) < 1_000_000  # 100 messages, not 20 MB
        assert len(snapshot["state"]["messages"]) == 100
        sent = ROOM_SIZE + (1 if snapshot["version"] > ROOM_SIZE else 0)
        assert snapshot["state"]["counts"]["sent"] == sent

        newest = [f"m{n}" for n in range(ROOM_SIZE - 98, ROOM_SIZE + 2)]
        for source in ("view", "replay"):
            status, body = await fleet.get(f"/v1/rooms/big/messages?limit=100&source={source}")
            assert status == 200 and ids(body) == newest, source
            assert body["before_version"] == ROOM_SIZE - 98
        # Deep pages come from the store, with the changes made thousands of events later.
        status, oldest = await fleet.get("/v1/rooms/big/messages?limit=20&before_version=10")
        assert status == 200 and ids(oldest) == ["m1", "m2", "m3", "m4", "m5", "m7", "m8", "m9"]
        assert oldest["before_version"] is None
        fixed = next(m for m in oldest["messages"] if m["message_id"] == "m5")
        assert (fixed["content"], fixed["edited"]) == ("fixed", True)
        half = ROOM_SIZE // 2
        _, middle = await fleet.get(f"/v1/rooms/big/messages?limit=3&before_version={half + 1}")
        assert ids(middle) == [f"m{half - 2}", f"m{half - 1}", f"m{half}"]
        assert middle["before_version"] == half - 2
        status, state = await fleet.get("/v1/chat_room/big/state")
        assert status == 200 and state["version"] == ROOM_SIZE + 4

        assert await fleet.metric("eventfleet_aggregates_parked_total") == 0
        assert (await fleet.get("/readyz"))[0] == 200
        report = await audit(stack, unique_name, refs=[("chat_room", "big")], topics=False)
        assert errors(report) == [] and report.checked.get("snapshots") == 1
        assert report.checked.get("views") == 1


async def test_a_state_the_store_cannot_take_parks_one_aggregate_not_the_fleet(
    stack: EmbeddedStack, unique_name: str
) -> None:
    blob = "y" * 4000
    huge = [
        new_event("hoard", "huge", "BlobStored", {"blob": blob}, version=n)
        for n in range(1, 4401)  # ~17.6 MB of state: over MongoDB's 16 MB document limit
    ]
    await store_directly(stack, unique_name, huge)
    async with running_fleet(
        stack, unique_name, EVENTFLEET_DOMAINS="tests.e2e.hoarding:domains"
    ) as fleet:
        for aggregate in ("huge", "tiny"):
            await posted(fleet, f"/v1/hoard/{aggregate}/events", "Sealed", {"blob": "end"})

        async def tiny_done() -> bool:
            status, body = await fleet.get("/v1/hoard/tiny/snapshot")
            return status == 200 and body["version"] == 1

        await wait_for(tiny_done, timeout_s=120, what="the small aggregate's snapshot")
        dlq = await read_until(
            stack.urls.kafka_url, f"{fleet.prefix}events.dlq", expect=2, timeout_s=120
        )
        reasons = sorted((dict(r.headers)["dlq_reason"], r.key) for r in dlq)
        assert reasons == [
            (b"projection_failed", b"hoard:huge"),
            (b"snapshot_failed", b"hoard:huge"),
        ]
        detail = dict(dlq[0].headers)["dlq_detail"].decode()
        assert "hoard huge" in detail and "too large" in detail.lower()
        for role, reason in (
            ("projection", "projection_failed"),
            ("snapshotter", "snapshot_failed"),
        ):
            parked = await fleet.metric(
                "eventfleet_aggregates_parked_total", reason=reason, role=role
            )
            assert parked == 1, (role, reason)
        # The partition moved on: the small one keeps being served, the process keeps running.
        await posted(fleet, "/v1/hoard/tiny/events", "Sealed", {"blob": "again"})

        async def tiny_again() -> bool:
            status, body = await fleet.get("/v1/hoard/tiny/snapshot")
            return status == 200 and body["version"] == 2

        await wait_for(tiny_again, timeout_s=60, what="a later snapshot of the small aggregate")
        status, state = await fleet.get("/v1/hoard/huge/state")  # replay still answers
        assert status == 200 and state["version"] == 4401 and len(state["state"]["blobs"]) == 4401
        assert (await fleet.get("/readyz"))[0] == 200
    # A restart does not stop again: the batch was acked, nothing poisoned is redelivered.
    async with running_fleet(
        stack, unique_name, EVENTFLEET_DOMAINS="tests.e2e.hoarding:domains"
    ) as again:
        await posted(again, "/v1/hoard/tiny/events", "Sealed", {"blob": "after restart"})

        async def tiny_third() -> bool:
            status, body = await again.get("/v1/hoard/tiny/snapshot")
            return status == 200 and body["version"] == 3

        await wait_for(tiny_third, timeout_s=60, what="the restarted fleet to snapshot")
    report = await audit(stack, unique_name, domains=hoarding_domains(), topics=False)
    # Histories agree; the huge hoard has no snapshot, and its view, parked by the projection,
    # is reported missing: the auditor names what an operator has to look at.
    assert [e.split(":")[0] for e in errors(report)] == ["view_missing hoard huge"]
