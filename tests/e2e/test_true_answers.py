"""True answers under slow clients, a paused broker and poison input (issue 10, findings 4, 6, 7)."""

from __future__ import annotations

import asyncio

import orjson

from tests.auditing import audit
from tests.e2e.fragile import domains as fragile_domains
from tests.e2e.raw_http import chunked, post_head, raw_http
from tests.fleet import FleetProcess, order_items, running_fleet, wait_for
from tests.kafka_topics import produce_events, read_until
from topics.envelope import decode
from workers.devtools.embedded import EmbeddedStack

PLACE = orjson.dumps({"type": "OrderPlaced", "data": {"items": order_items()}})


async def test_bodies_are_read_whole_however_they_arrive(fleet: FleetProcess) -> None:
    port = int(fleet.env["EVENTFLEET_HTTP_PORT"])
    half = len(PLACE) // 2
    # Content-Length, sent in two writes half a second apart: one whole body.
    head = post_head("/v1/order/slow-1/events", Content_Length=str(len(PLACE)))
    status, body = await raw_http(port, head, [PLACE[:half], PLACE[half:]], gap_s=0.5)
    assert status == 202, body
    # Chunked, in pieces: the same.
    head = post_head("/v1/order/slow-2/events", Transfer_Encoding="chunked")
    status, body = await raw_http(port, head, chunked(PLACE[:half], PLACE[half:]), gap_s=0.2)
    assert status == 202, body
    # Chunked: valid JSON, then junk in a later chunk: the whole body is not JSON.
    head = post_head("/v1/order/slow-3/events", Transfer_Encoding="chunked")
    status, body = await raw_http(port, head, chunked(PLACE, b"}}junk"), gap_s=0.1)
    assert (status, body["error"]) == (400, "bad_request"), body
    # Chunked, 200 KB: too large, whatever its chunks.
    big = b"x" * (200 * 1024)
    head = post_head("/v1/order/slow-4/events", Transfer_Encoding="chunked")
    status, body = await raw_http(port, head, chunked(big[:1000], big[1000:]))
    assert (status, body["error"]) == (413, "payload_too_large"), body
    assert "65536" in body["message"] and "65537" not in body["message"]
    for path in ("slow-3", "slow-4"):  # refused: nothing written
        status, _ = await fleet.get(f"/v1/order/{path}/events")
        assert status == 404


async def test_query_parameters_are_parsed_strictly(fleet: FleetProcess) -> None:
    for path in (
        "/v1/rooms/r1/messages?limit=%C2%B2",  # '²': a digit to str.isdigit, not to int()
        "/v1/order/o1/events?limit=%C2%B2",
        "/v1/order/o1/events?after_version=+1",
        "/v1/order/o1/events?limit=1_0",
        "/v1/order/o1/state?at_version=%E2%91%A0",  # '①'
    ):
        status, body = await fleet.get(path)
        assert status == 400 and body["error"] == "bad_request", (path, body)


async def test_a_version_the_outbox_held_back_is_published_before_the_next_one(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    async with running_fleet(
        private_stack,
        unique_name,
        roles="commands",
        EVENTFLEET_KAFKA_TIMEOUT_MS="800",
        EVENTFLEET_SYNC_PUBLISH_BUDGET_MS="300",
    ) as fleet:
        accounts = [f"ob-{i}" for i in range(12)]
        for account in accounts:
            path = f"/v1/account/{account}/events"
            assert (await fleet.post(path, {"type": "AccountOpened", "data": {"owner": "a"}}))[
                0
            ] == 201
            assert (await fleet.post(path, {"type": "MoneyDeposited", "data": {"amount": 9}}))[
                0
            ] == 201
        kafka = private_stack.process("kafka")
        kafka.pause()
        try:  # v3 is stored but Kafka does not acknowledge it: 201, published false
            answers = await asyncio.gather(
                *(
                    fleet.post(
                        f"/v1/account/{a}/events", {"type": "MoneyDeposited", "data": {"amount": 1}}
                    )
                    for a in accounts
                )
            )
        finally:
            kafka.resume()
        assert {(s, b.get("published")) for s, b in answers} == {(201, False)}, answers
        # v4 goes out directly at once: v3 must not end up behind it.
        more = await asyncio.gather(
            *(
                fleet.post(
                    f"/v1/account/{a}/events", {"type": "MoneyWithdrawn", "data": {"amount": 1}}
                )
                for a in accounts
            )
        )
        assert {s for s, _ in more} == {201}
        records = await read_until(
            private_stack.urls.kafka_url,
            f"{fleet.prefix}events.stored",
            expect=4 * len(accounts),
            timeout_s=60,
        )
        firsts: dict[str, list[int]] = {}
        seen: set[str] = set()
        for record in records:
            event = decode(record.value)
            if event.id not in seen:
                seen.add(event.id)
                firsts.setdefault(event.aggregate_id, []).append(event.version or 0)
        assert firsts == {a: [1, 2, 3, 4] for a in accounts}, firsts


async def test_poison_and_a_failing_reducer_park_one_aggregate_and_the_partition_moves_on(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    async with running_fleet(
        private_stack, unique_name, EVENTFLEET_DOMAINS="tests.e2e.fragile:domains"
    ) as fleet:
        events = [("ledger", "bad", "Entered", {"n": 13})]  # the reducer raises on 13
        events += [("ledger", f"ok-{i}", "Entered", {"n": 100 + i}) for i in range(20)]
        events += [("ledger", f"ok-{i}", "Entered", {"n": 1}) for i in range(20)]
        await produce_events(private_stack.urls.kafka_url, f"{fleet.prefix}events", events)

        async def snapshots_taken() -> bool:
            results = [await fleet.get(f"/v1/ledger/ok-{i}/snapshot") for i in range(20)]
            return all(status == 200 and body["version"] == 2 for status, body in results)

        await wait_for(snapshots_taken, timeout_s=60, what="snapshots of the healthy ledgers")
        status, body = await fleet.get("/v1/ledger/bad/state")
        assert (status, body["error"]) == (500, "replay_failed") and "13" in body["message"]
        _, metrics = await fleet.get("/metrics")
        assert (
            'eventfleet_aggregates_parked_total{reason="snapshot_failed",role="snapshotter"} 1.0'
            in metrics
        )
        dlq = await read_until(private_stack.urls.kafka_url, f"{fleet.prefix}events.dlq", expect=1)
        assert [dict(r.headers)["dlq_reason"] for r in dlq] == [b"snapshot_failed"]
        status, _ = await fleet.get("/readyz")
        assert status == 200 and fleet.process is not None and fleet.process.returncode is None
        report = await audit(private_stack, unique_name, domains=fragile_domains(), topics=False)
        assert [f.kind for f in report.findings] == ["invalid_history"]  # only the poisoned one
