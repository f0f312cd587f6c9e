"""The asynchronous pipeline end to end, through HTTP and topics, on the embedded stack."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson

from snapshot_rules.replay import replay
from tests.e2e.pipeline import drive_order, stored_events, wait_stored
from tests.fleet import FleetProcess, order_items, wait_for
from tests.kafka_topics import produce_raw, read_until
from topics.envelope import decode, from_dict
from workers.examples.domains.order import reduce_order


async def test_many_orders_through_their_lifecycle(fleet: FleetProcess) -> None:
    run = uuid.uuid4().hex[:6]
    orders = {f"o-{run}-{i}": i % 4 == 0 for i in range(24)}
    counts = await asyncio.gather(
        *(drive_order(fleet, oid, cancel) for oid, cancel in orders.items())
    )
    expected = dict(zip(orders, counts, strict=True))
    await wait_stored(fleet, "order", expected)

    for order_id, cancelled in orders.items():
        docs = await stored_events(fleet, "order", order_id)
        assert [d["version"] for d in docs] == list(range(1, expected[order_id] + 1))
        folded = replay(reduce_order, [from_dict(d) for d in docs])
        status, state = await fleet.get(f"/v1/order/{order_id}/state")
        assert status == 200 and state == {"version": folded.version, "state": folded.state}
        assert folded.state is not None
        assert folded.state["status"] == ("cancelled" if cancelled else "delivered")

        async def snapshot_taken(order_id: str = order_id, version: int = folded.version) -> bool:
            status, body = await fleet.get(f"/v1/order/{order_id}/snapshot")
            return status == 200 and body["version"] == version

        await wait_for(snapshot_taken, timeout_s=20, what=f"terminal snapshot of {order_id}")
        _, snapshot = await fleet.get(f"/v1/order/{order_id}/snapshot")
        assert snapshot["state"] == folded.state

    records = await read_until(
        fleet.env["EVENTFLEET_KAFKA_URL"], f"{fleet.prefix}orders", expect=0, settle_s=1
    )
    ours = [decode(r.value) for r in records if decode(r.value).aggregate_id in orders]
    assert len(ours) == sum(counts)
    for order_id in orders:
        versions = [e.version for e in ours if e.aggregate_id == order_id]
        assert versions == list(range(1, expected[order_id] + 1)), order_id
    keys = {r.key for r in records if decode(r.value).aggregate_id in orders}
    assert keys == {f"order:{oid}".encode() for oid in orders}


async def test_concurrent_conflicting_payments_accept_exactly_one(fleet: FleetProcess) -> None:
    order_id = f"race-{uuid.uuid4().hex[:8]}"
    status, _ = await fleet.post(
        f"/v1/order/{order_id}/events", {"type": "OrderPlaced", "data": {"items": order_items()}}
    )
    assert status == 202
    answers = await asyncio.gather(
        *(
            fleet.post(f"/v1/order/{order_id}/events", {"type": "OrderPaid", "data": {"amount": 5}})
            for _ in range(16)
        )
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [202] + [409] * 15
    rejected = next(body for status, body in answers if status == 409)
    assert rejected["error"] == "transition_rejected"
    assert rejected["current"] == "OrderPaid" and rejected["allowed"] == ["OrderPlaced"]
    await wait_stored(fleet, "order", {order_id: 2})


async def test_bad_requests_get_clear_errors_and_write_nothing(fleet: FleetProcess) -> None:
    order_id = f"bad-{uuid.uuid4().hex[:8]}"
    path = f"/v1/order/{order_id}/events"
    cases: list[tuple[int, str, Any, bytes | None]] = [
        (400, "bad_request", None, b"{not json"),
        (400, "bad_request", None, b"[1, 2]"),
        (400, "bad_request", {"data": {}}, None),
        (400, "bad_request", {"type": "OrderPlaced", "surprise": 1}, None),
        (400, "bad_request", {"type": "OrderPlaced", "data": {"$where": 1}}, None),
        (400, "bad_request", {"type": "OrderPlaced", "data": {"a.b": 1}}, None),
        (
            413,
            "payload_too_large",
            None,
            b'{"type": "OrderPlaced", "data": {"x": "' + b"y" * 70_000 + b'"}}',
        ),
        (422, "unknown_event_type", {"type": "OrderTeleported", "data": {}}, None),
        (422, "invalid_data", {"type": "OrderPlaced", "data": {"items": []}}, None),
        (
            422,
            "invalid_data",
            {"type": "OrderPlaced", "data": {"items": [{"sku": "a", "qty": -1, "price": 1}]}},
            None,
        ),
        (409, "transition_rejected", {"type": "OrderShipped", "data": {"carrier": "x"}}, None),
    ]
    for status, code, body, raw in cases:
        got_status, got = await fleet.post(path, body, raw)
        assert (got_status, got["error"]) == (status, code), (body, raw and raw[:40], got)
        assert got["message"]
    status, body = await fleet.post("/v1/spaceship/s1/events", {"type": "Launched", "data": {}})
    assert status == 404 and body["error"] == "unknown_aggregate_type"
    status, body = await fleet.post("/v1/order/bad id!/events", {"type": "OrderPlaced", "data": {}})
    assert status in (400, 404)

    for query in ("events", "snapshot", "state"):
        status, _ = await fleet.get(f"/v1/order/{order_id}/{query}")
        assert status == 404, query
    status, body = await fleet.get(f"/v1/order/{order_id}/events?after_version=-1")
    assert status == 400 and "after_version" in body["message"]
    status, body = await fleet.get(f"/v1/order/{order_id}/state?as_of=yesterday")
    assert status == 400

    # Nothing was written: the first valid event of this order is version 1.
    status, _ = await fleet.post(path, {"type": "OrderPlaced", "data": {"items": order_items()}})
    assert status == 202
    await wait_stored(fleet, "order", {order_id: 1})


async def test_a_repeated_command_id_returns_the_commands_outcome(fleet: FleetProcess) -> None:
    order_id = f"idem-{uuid.uuid4().hex[:8]}"
    request = {
        "type": "OrderPlaced",
        "data": {"items": order_items()},
        "command_id": "cmd-1",
        "client_id": "shop",
    }
    first = await fleet.post(f"/v1/order/{order_id}/events", request)
    again = await asyncio.gather(
        *(fleet.post(f"/v1/order/{order_id}/events", request) for _ in range(5))
    )
    assert first[0] == 202 and "duplicate" not in first[1]
    for status, body in again:  # the same event, told as a duplicate (stored: with its version)
        assert status == 202 and body["event_id"] == first[1]["event_id"] and body["duplicate"]
        assert body.get("offset", first[1]["offset"]) == first[1]["offset"]
    await wait_stored(fleet, "order", {order_id: 1})
    status, stored = await fleet.post(f"/v1/order/{order_id}/events", request)
    assert (status, stored) == (
        202,
        {"event_id": first[1]["event_id"], "version": 1, "duplicate": True},
    )
    [event] = await stored_events(fleet, "order", order_id)
    assert event["id"] == first[1]["event_id"]
    assert event["metadata"]["command_id"] == "cmd-1" and event["metadata"]["client_id"] == "shop"


async def test_queries_page_and_travel_in_time(fleet: FleetProcess) -> None:
    order_id = f"q-{uuid.uuid4().hex[:8]}"
    await drive_order(fleet, order_id, cancel=False)
    await wait_stored(fleet, "order", {order_id: 4})
    status, page = await fleet.get(f"/v1/order/{order_id}/events?after_version=1&limit=2")
    assert status == 200 and [e["version"] for e in page["events"]] == [2, 3]
    events = await stored_events(fleet, "order", order_id)
    status, at2 = await fleet.get(f"/v1/order/{order_id}/state?at_version=2")
    assert at2 == {
        "version": 2,
        "state": replay(reduce_order, [from_dict(e) for e in events[:2]]).state,
    }
    moment = events[2]["occurred_at"]
    status, at_time = await fleet.get(f"/v1/order/{order_id}/state?as_of={moment}")
    assert status == 200 and at_time["version"] == 3
    status, _ = await fleet.get(f"/v1/order/{order_id}/state?as_of=2000-01-01T00:00:00Z")
    assert status == 404


async def test_poison_events_go_to_the_dead_letter_topic(fleet: FleetProcess) -> None:
    kafka = fleet.env["EVENTFLEET_KAFKA_URL"]
    marker = uuid.uuid4().hex
    unknown = orjson.dumps(
        {
            "id": str(uuid.uuid4()), "aggregate_type": "spaceship", "aggregate_id": marker,
            "type": "Launched", "version": None, "data": {}, "metadata": {
                "client_id": None, "command_id": None, "correlation_id": None, "causation_id": None,
            }, "occurred_at": "2026-01-01T00:00:00Z",
        }
    )  # fmt: skip
    poison = [
        (b"x", b"\x00not an event " + marker.encode(), ()),
        (b"spaceship:" + marker.encode(), unknown, ()),
    ]
    await produce_raw(kafka, f"{fleet.prefix}events", poison)
    # The stream keeps moving: a normal order after the poison is stored.
    order_id = f"after-poison-{marker[:8]}"
    status, _ = await fleet.post(
        f"/v1/order/{order_id}/events", {"type": "OrderPlaced", "data": {"items": order_items()}}
    )
    assert status == 202
    await wait_stored(fleet, "order", {order_id: 1})

    records = await read_until(
        kafka,
        f"{fleet.prefix}events.dlq",
        expect=2,
        where=lambda r: marker.encode() in r.value,
        settle_s=0.2,
    )
    ours = [r for r in records if marker.encode() in r.value]
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in ours)
    assert reasons == ["undecodable", "unknown_aggregate_type"]
    assert any(r.value.startswith(b"\x00not an event") for r in ours)  # the original bytes


async def test_health_readiness_and_metrics(fleet: FleetProcess) -> None:
    status, body = await fleet.get("/healthz")
    assert status == 200 and body["status"] == "alive"
    status, body = await fleet.get("/readyz")
    assert status == 200 and all(body["checks"].values())
    status, text = await fleet.get("/metrics")
    assert status == 200
    for name in (
        "eventfleet_requests_total",
        "eventfleet_command_latency_seconds_bucket",
        "eventfleet_consumer_lag_events",
    ):
        assert name in text


async def test_commands_from_the_commands_topic_are_answered_on_replies(
    fleet: FleetProcess,
) -> None:
    kafka = fleet.env["EVENTFLEET_KAFKA_URL"]
    order_id = f"topic-{uuid.uuid4().hex[:8]}"
    good = {
        "aggregate_type": "order",
        "aggregate_id": order_id,
        "type": "OrderPlaced",
        "data": {"items": order_items()},
    }
    wrong = {**good, "type": "OrderShipped", "data": {"carrier": "x"}}
    key = f"order:{order_id}".encode()
    values = [orjson.dumps(good), orjson.dumps(wrong), b"{broken"]  # in this order, one key
    await produce_raw(kafka, f"{fleet.prefix}commands", [(key, v, ()) for v in values])
    await wait_stored(fleet, "order", {order_id: 1})
    replies = await read_until(
        kafka,
        f"{fleet.prefix}commands.replies",
        expect=3,
        where=lambda r: r.key == key,
        settle_s=0.3,
    )
    ours = [orjson.loads(r.value) for r in replies if r.key == key]
    assert [reply["status"] for reply in ours] == [202, 409, 400]
    [stored] = await stored_events(fleet, "order", order_id)
    assert stored["id"] == ours[0]["body"]["event_id"]
