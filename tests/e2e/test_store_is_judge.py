"""Issue 10's findings as regressions, on real services: stalls, races, lost marks, hostile input.

Each test pauses (SIGSTOP) or cuts a real service, or races real processes, and then asks the
auditor: every stored history is a valid path of its domain, every answer was true, every
retry with the same command id stored one event.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from tests.auditing import audit, errors, settled_audit
from tests.faults import TcpProxy
from tests.fleet import FleetProcess, order_items, running_fleet, wait_for
from tests.kafka_topics import produce_events, read_until
from topics.envelope import decode
from workers.adapters.mongo import connect, database
from workers.devtools.embedded import EmbeddedStack, free_port

PLACE = {"type": "OrderPlaced", "data": {"items": order_items()}}
PAY = {"type": "OrderPaid", "data": {"amount": 5}}
SHIP = {"type": "OrderShipped", "data": {"carrier": "dhl"}}
CANCEL = {"type": "OrderCancelled", "data": {"reason": "changed mind"}}


def with_command(body: dict[str, Any], command_id: str) -> dict[str, Any]:
    return {**body, "command_id": command_id}


async def stored_types(fleet: FleetProcess, kind: str, aggregate_id: str) -> list[str]:
    status, body = await fleet.get(f"/v1/{kind}/{aggregate_id}/events?limit=1000")
    return [e["type"] for e in body["events"]] if status == 200 else []


async def stored_ids(fleet: FleetProcess, kind: str, aggregate_id: str) -> list[str]:
    status, body = await fleet.get(f"/v1/{kind}/{aggregate_id}/events?limit=1000")
    return [e["id"] for e in body["events"]] if status == 200 else []


async def outcome(fleet: FleetProcess, kind: str, aggregate_id: str, command_id: str) -> str:
    _, body = await fleet.get(f"/v1/{kind}/{aggregate_id}/outcome?command_id={command_id}")
    return str(body.get("outcome"))


async def test_a_produce_the_paused_broker_holds_is_outcome_unknown_and_its_retry_stores_once(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    async with running_fleet(
        private_stack, unique_name, EVENTFLEET_KAFKA_TIMEOUT_MS="1000"
    ) as fleet:
        orders = [f"u-{i}" for i in range(20)]
        for order in orders:
            status, _ = await fleet.post(f"/v1/order/{order}/events", PLACE)
            assert status == 202
        kafka = private_stack.process("kafka")
        kafka.pause()  # the requests reach the broker's socket; it appends them on resume
        try:
            answers = await asyncio.gather(
                *(
                    fleet.post(f"/v1/order/{o}/events", with_command(PAY, f"pay-{o}"))
                    for o in orders
                )
            )
        finally:
            kafka.resume()
        # Sent to the broker, never acknowledged: it may be written; never "nothing written".
        assert {(s, b["error"]) for s, b in answers} == {(503, "outcome_unknown")}, answers
        for _, body in answers:
            assert (
                body["event_id"] and "retrying with the same command_id is safe" in body["message"]
            )

        async def retried() -> bool:
            again = await asyncio.gather(
                *(
                    fleet.post(f"/v1/order/{o}/events", with_command(PAY, f"pay-{o}"))
                    for o in orders
                )
            )
            return all(status == 202 for status, _ in again)

        await wait_for(retried, timeout_s=60, what="every retry with its command id to succeed")

        async def stored() -> bool:
            types = await asyncio.gather(*(stored_types(fleet, "order", o) for o in orders))
            return all(t == ["OrderPlaced", "OrderPaid"] for t in types)

        await wait_for(stored, timeout_s=60, what="each order stored once: placed, paid")
        for order in orders:
            assert await outcome(fleet, "order", order, f"pay-{order}") == "stored"
        assert errors(await settled_audit(private_stack, unique_name)) == []


async def test_a_redis_call_that_timed_out_leaves_no_mark_or_claim_beyond_its_bound(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    async with running_fleet(
        private_stack,
        unique_name,
        EVENTFLEET_REDIS_TIMEOUT_MS="300",
        EVENTFLEET_KAFKA_TIMEOUT_MS="1000",  # claims and tentative marks live 3.6 s
    ) as fleet:
        orders = [f"r-{i}" for i in range(10)]
        for order in orders:
            assert (await fleet.post(f"/v1/order/{order}/events", PLACE))[0] == 202
        redis = private_stack.process("redis")
        redis.pause()  # the scripts are sent; Redis runs them when it resumes
        try:
            answers = await asyncio.gather(
                *(fleet.post(f"/v1/order/{o}/events", with_command(PAY, f"p-{o}")) for o in orders)
            )
        finally:
            redis.resume()
        assert {(s, b["error"]) for s, b in answers} == {(503, "marker_unavailable")}

        async def retried() -> bool:
            again = await asyncio.gather(
                *(fleet.post(f"/v1/order/{o}/events", with_command(PAY, f"p-{o}")) for o in orders)
            )
            return all(status == 202 for status, _ in again)

        # Within the claims' bound (not 24 h) the same command ids are accepted.
        await wait_for(retried, timeout_s=30, what="the phantom claims to expire")

        async def settled() -> bool:
            types = await asyncio.gather(*(stored_types(fleet, "order", o) for o in orders))
            return all(t[:2] == ["OrderPlaced", "OrderPaid"] for t in types)

        await wait_for(settled, timeout_s=60, what="every OrderPaid stored")
        assert errors(await settled_audit(private_stack, unique_name)) == []


async def test_a_phantom_mark_is_a_wrong_early_answer_never_a_wrong_history(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    """A script Redis ran after its caller gave up marks an event that was never produced."""
    fleet = await FleetProcess.for_stack(
        private_stack, unique_name, EVENTFLEET_KAFKA_TIMEOUT_MS="1000"
    ).start()
    redis = Redis.from_url(private_stack.urls.redis_url)
    client = connect(private_stack.urls.mongo_url, timeout_ms=5000)
    try:
        orders = [f"ph-{i}" for i in range(8)]
        placed = {}
        for order in orders:
            status, body = await fleet.post(f"/v1/order/{order}/events", PLACE)
            assert status == 202
            placed[order] = body["event_id"]
        meta = await database(client, unique_name)["meta"].find_one({"_id": "store"})
        assert meta is not None
        for order in orders:  # exactly what a late CHECK_AND_MARK leaves: tentative, bounded
            key = f"{unique_name}.{meta['uuid']}:mark:{{order:{order}}}"
            phantom = f"OrderPaid|{uuid.uuid4()}|{placed[order]}"
            await redis.set(key, phantom, px=3600)
        ships = await asyncio.gather(*(fleet.post(f"/v1/order/{o}/events", SHIP) for o in orders))
        assert {s for s, _ in ships} == {202}  # the marker's early answer, from the phantom

        async def refused() -> bool:
            found = [
                await fleet.get(f"/v1/order/{o}/outcome?event_id={body['event_id']}")
                for o, (_, body) in zip(orders, ships, strict=True)
            ]
            return all(b.get("reason") == "transition_rejected_at_store" for _, b in found)

        await wait_for(refused, timeout_s=30, what="the store to refuse every OrderShipped")
        for order in orders:
            assert await stored_types(fleet, "order", order) == ["OrderPlaced"]
            # The mark named the refused event: it names the stored head again.
            value = await redis.get(f"{unique_name}.{meta['uuid']}:mark:{{order:{order}}}")
            assert value is None or value.decode().split("|")[1] == placed[order]
            assert (await fleet.post(f"/v1/order/{order}/events", PAY))[0] == 202
        assert errors(await settled_audit(private_stack, unique_name)) == []
    finally:
        await redis.aclose()
        await client.close()
        assert await fleet.stop() == 0


async def test_a_sync_write_whose_answer_was_lost_is_unknown_and_its_retry_applies_once(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    mongo_host, mongo_port = private_stack.urls.mongo_url.split("//")[1].split("/")[0].split(":")
    async with TcpProxy(mongo_host, int(mongo_port)) as proxy:
        url = f"mongodb://{proxy.address}/?directConnection=true"
        async with running_fleet(
            private_stack,
            unique_name,
            roles="commands",
            EVENTFLEET_MONGO_URL=url,
            EVENTFLEET_MONGO_TIMEOUT_MS="800",
        ) as fleet:
            path = "/v1/account/a1/events"
            assert (await fleet.post(path, {"type": "AccountOpened", "data": {"owner": "a"}}))[
                0
            ] == 201
            assert (await fleet.post(path, {"type": "MoneyDeposited", "data": {"amount": 50}}))[
                0
            ] == 201
            withdraw = {"type": "MoneyWithdrawn", "data": {"amount": 40}, "command_id": "w-1"}
            proxy.hold_replies_after(
                b"\x02insert\x00"
            )  # the insert reaches MongoDB, its answer not
            try:
                status, body = await fleet.post(path, withdraw)
            finally:
                proxy.release_replies()
            assert proxy.held_requests >= 1
            assert (status, body["error"]) == (503, "outcome_unknown"), body
            # The retry: the withdrawal is stored already; applying it again would overdraw.
            status, body = await fleet.post(path, withdraw)
            assert status == 201 and body["duplicate"] is True, body
            _, events = await fleet.get(f"{path}?limit=100")
            assert [e["type"] for e in events["events"]].count("MoneyWithdrawn") == 1
            assert await outcome(fleet, "account", "a1", "w-1") == "stored"


async def test_racing_commands_processes_and_lost_marks_store_only_valid_histories(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    """Two commands processes validate one aggregate's events and produce in either order;
    Redis loses every mark mid-run; the store judges and every history stays a valid path."""
    first = await FleetProcess.for_stack(private_stack, unique_name, roles="all").start()
    second = FleetProcess(env={**first.env}, roles="commands")
    second.env["EVENTFLEET_HTTP_PORT"] = str(free_port())
    await second.start()
    try:
        orders = [f"x-{uuid.uuid4().hex[:6]}" for _ in range(60)]
        accepted: dict[str, list[str]] = {o: [] for o in orders}

        async def story(order: str, flush: bool) -> None:
            status, body = await first.post(f"/v1/order/{order}/events", PLACE)
            if status == 202:
                accepted[order].append(body["event_id"])
            if flush:
                redis = Redis.from_url(private_stack.urls.redis_url)
                await redis.flushall()  # every mark lost: the fallback reads a store behind
                await redis.aclose()
            # Racing: each process validates one step; either may reach Kafka first.
            for a, b in ((PAY, CANCEL), (SHIP, CANCEL)):
                results = await asyncio.gather(
                    first.post(f"/v1/order/{order}/events", a),
                    second.post(f"/v1/order/{order}/events", b),
                )
                for status, body in results:
                    if status == 202:
                        accepted[order].append(body["event_id"])

        await asyncio.gather(*(story(o, i == 30) for i, o in enumerate(orders)))

        outcomes: dict[str, str] = {}

        async def decided() -> bool:  # every accepted event is stored, or refused with a reason
            for order in orders:
                for event_id in accepted[order]:
                    if outcomes.get(event_id) in ("stored", "rejected"):
                        continue
                    _, body = await first.get(f"/v1/order/{order}/outcome?event_id={event_id}")
                    outcomes[event_id] = str(body.get("outcome"))
                    if outcomes[event_id] not in ("stored", "rejected"):
                        return False
            return True

        await wait_for(decided, timeout_s=60, what="every accepted event stored or refused")
        report = await settled_audit(private_stack, unique_name)
        assert errors(report) == [], errors(report)
        assert report.aggregates >= len(orders)
        # Each accepted event is in the store once or refused; nothing else is stored.
        stored = [e for o in orders for e in await stored_ids(first, "order", o)]
        assert len(stored) == len(set(stored))
        assert set(stored) == {i for i, outcome in outcomes.items() if outcome == "stored"}
        print(
            f"\nracing: sent {len(orders) * 5}, accepted {len(outcomes)}, stored {len(stored)}, "
            f"refused at the store {sum(o == 'rejected' for o in outcomes.values())}, "
            f"duplicated 0, invalid histories {len(errors(report))}"
        )
    finally:
        assert await second.stop() == 0
        assert await first.stop() == 0


async def test_events_the_domain_refuses_produced_straight_to_the_topic_are_never_stored(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    async with running_fleet(private_stack, unique_name) as fleet:
        huge = {"items": [{"sku": "x", "qty": 2**63 - 1, "price": 2**63 - 1}]}
        await produce_events(
            private_stack.urls.kafka_url,
            f"{fleet.prefix}events",
            [("order", "empty", "OrderPlaced", {}), ("order", "huge", "OrderPlaced", huge),
             ("order", "fine", "OrderPlaced", {"items": order_items()})],
        )  # fmt: skip

        async def fine_stored() -> bool:
            return await stored_types(fleet, "order", "fine") == ["OrderPlaced"]

        await wait_for(fine_stored, timeout_s=30, what="the valid order stored")
        for bad in ("empty", "huge"):
            assert await stored_types(fleet, "order", bad) == []
            status, body = await fleet.get(f"/v1/order/{bad}/state")
            assert status == 404, body  # no history: nothing to fold, no 500
        status, _ = await fleet.get("/readyz")
        assert status == 200  # the snapshotter and every role still run


async def test_commands_from_the_topic_through_a_broker_stall_are_stored_once_each(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    """The commands agent retries what timed out; the record's position is its command id."""
    async with running_fleet(
        private_stack, unique_name, EVENTFLEET_KAFKA_TIMEOUT_MS="1000"
    ) as fleet:
        orders = [f"ct-{i}" for i in range(150)]
        steps = [PLACE, PAY, SHIP]
        producer = AIOKafkaProducer(
            bootstrap_servers=private_stack.urls.kafka_url.removeprefix("kafka://"), acks="all"
        )
        await producer.start()
        try:
            for step in steps:
                for order in orders:
                    command = {"aggregate_type": "order", "aggregate_id": order, **step}
                    await producer.send(
                        f"{fleet.prefix}commands",
                        orjson.dumps(command),
                        key=f"order:{order}".encode(),
                    )
            await producer.flush()
        finally:
            await producer.stop()
        kafka = private_stack.process("kafka")
        for _ in range(3):  # stalls while the agent works through the commands
            kafka.pause()
            await asyncio.sleep(1.5)  # the stall itself
            kafka.resume()
            await asyncio.sleep(0.5)

        async def stored() -> bool:
            types = await asyncio.gather(*(stored_types(fleet, "order", o) for o in orders))
            return all(t == ["OrderPlaced", "OrderPaid", "OrderShipped"] for t in types)

        await wait_for(stored, timeout_s=120, what="every order stored once: placed, paid, shipped")
        assert errors(await settled_audit(private_stack, unique_name)) == []


async def test_several_appender_processes_store_every_chained_event_once_through_rebalances(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    from workers.devtools.bench.append import chains, produce

    first = await FleetProcess.for_stack(private_stack, unique_name, roles="appender").start()
    second = FleetProcess(
        env={**first.env, "EVENTFLEET_HTTP_PORT": str(free_port())}, roles="appender"
    )
    try:
        events = chains(1200, 40, "several")
        bootstrap = [private_stack.urls.kafka_url.removeprefix("kafka://")]
        await produce(bootstrap, f"{first.prefix}events", events[:600])
        await second.start()  # joins mid-stream: a rebalance while events wait and flow
        await produce(bootstrap, f"{first.prefix}events", events[600:])
        client = connect(private_stack.urls.mongo_url, timeout_ms=5000)
        try:
            stored = database(client, unique_name)["events"]

            async def all_stored() -> bool:
                return await stored.count_documents({}) >= len(events)

            await wait_for(all_stored, timeout_s=120, what=f"{len(events)} events stored")
            assert await stored.count_documents({}) == len(events)
        finally:
            await client.close()
        # Only appenders run here: no projection, so no view to compare.
        assert errors(await audit(private_stack, unique_name, topics=False, views=False)) == []
        records = await read_until(
            private_stack.urls.kafka_url, f"{first.prefix}events.stored", expect=len(events)
        )
        firsts: dict[str, list[int]] = {}
        seen: set[str] = set()
        for record in records:
            event = decode(record.value)
            if event.id not in seen:
                seen.add(event.id)
                firsts.setdefault(event.aggregate_id, []).append(event.version or 0)
        assert all(v == list(range(1, len(v) + 1)) for v in firsts.values()), firsts
        assert len(seen) == len(events)
    finally:
        assert await second.stop() == 0
        assert await first.stop() == 0
