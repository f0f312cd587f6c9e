"""Failure under load: a dependency down, a worker killed or stopped mid-batch. Nothing lost or doubled."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaProducer

from tests.e2e.pipeline import stored_events, wait_stored
from tests.fleet import FleetProcess, order_items, running_fleet, wait_for
from tests.kafka_topics import read_until
from tests.waiting import within
from topics.envelope import decode, encode, kafka_headers, new_event
from workers.adapters.mongo import connect, database
from workers.devtools.embedded import EmbeddedStack


async def produce_requested(
    kafka_url: str, topic: str, orders: list[str], per_order: int, *, first_step: int = 0
) -> list[str]:
    """Produce requested (unversioned) events straight to the events topic, as commands would.

    Chat rooms, because any number of MessageSent make a valid history: the appender judges
    every event at the store, and only valid histories are stored.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_url.removeprefix("kafka://"), acks="all", linger_ms=5
    )
    await producer.start()
    ids: list[str] = []
    try:
        futures = []
        for step in range(first_step, first_step + per_order):
            for order in orders:
                data = {"message_id": f"m{step}", "sender_id": "ann", "content": f"hello {step}"}
                event = new_event("chat_room", order, "MessageSent", data)
                ids.append(event.id)
                futures.append(
                    await producer.send(
                        topic, encode(event), key=event.key, headers=kafka_headers(event)
                    )
                )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return ids


async def store_contents(stack: EmbeddedStack, name: str) -> list[dict[str, object]]:
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        cursor = database(client, name)["events"].find(
            {}, projection={"aggregate_id": 1, "version": 1}
        )
        return [doc async for doc in cursor]
    finally:
        await client.close()


def assert_exactly_once(
    docs: list[dict[str, object]], ids: list[str], orders: list[str], per_order: int
) -> None:
    assert sorted(str(d["_id"]) for d in docs) == sorted(ids)  # none lost, none doubled
    versions: dict[object, list[object]] = {}
    for doc in docs:
        versions.setdefault(doc["aggregate_id"], []).append(doc["version"])
    for order in orders:
        assert sorted(versions[order]) == list(range(1, per_order + 1)), order  # type: ignore[type-var]


async def test_redis_down_answers_503_and_produces_nothing(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    async with running_fleet(
        private_stack,
        unique_name,
        EVENTFLEET_REDIS_TIMEOUT_MS="300",
        EVENTFLEET_HEALTH_INTERVAL_S="1",
    ) as fleet:
        order = f"r-{uuid.uuid4().hex[:6]}"
        redis = private_stack.process("redis")
        await redis.stop()
        status, body = await fleet.post(
            f"/v1/order/{order}/events", {"type": "OrderPlaced", "data": {"items": order_items()}}
        )
        assert status == 503 and body["error"] == "marker_unavailable", body

        async def reported_down() -> bool:  # dependency health is checked in the background
            _, health = await fleet.get("/healthz?verbose")
            return health["dependencies"].get("marker", {}).get("ok") is False

        await wait_for(reported_down, timeout_s=10, what="/healthz?verbose to report Redis down")
        # Redis down is not "unready": the Service keeps the pod, clients get the designed 503.
        status, ready = await fleet.get("/readyz")
        assert status == 200 and ready["ready"] is True, ready
        _, metrics = await fleet.get("/metrics")
        assert 'eventfleet_dependency_up{role="all",service="marker"} 0.0' in metrics
        await redis.start()
        status, body = await fleet.post(
            f"/v1/order/{order}/events", {"type": "OrderPlaced", "data": {"items": order_items()}}
        )
        assert status == 202, body
        records = await read_until(
            private_stack.urls.kafka_url, f"{fleet.prefix}events", expect=1, settle_s=0.5
        )
        assert [decode(r.value).id for r in records if decode(r.value).aggregate_id == order] == [
            body["event_id"]
        ]


async def test_store_paused_then_the_appender_catches_up(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    async with running_fleet(
        private_stack, unique_name, EVENTFLEET_MONGO_TIMEOUT_MS="500"
    ) as fleet:
        orders = [f"s-{i}" for i in range(20)]
        for order in orders:
            status, _ = await fleet.post(
                f"/v1/order/{order}/events",
                {"type": "OrderPlaced", "data": {"items": order_items()}},
            )
            assert status == 202
        await wait_stored(fleet, "order", dict.fromkeys(orders, 1))
        mongo = private_stack.process("mongo")
        mongo.pause()
        try:
            # Marks exist, so commands need no store: they are accepted while the appender waits.
            answers = await asyncio.gather(
                *(
                    fleet.post(
                        f"/v1/order/{o}/events", {"type": "OrderPaid", "data": {"amount": 5}}
                    )
                    for o in orders
                )
            )
            assert {status for status, _ in answers} == {202}

            async def appender_paused() -> bool:
                retries = "eventfleet_dependency_retries_total"
                return await fleet.metric(retries, role="appender", service="store") > 0

            await wait_for(appender_paused, timeout_s=20, what="the appender to pause on the store")
        finally:
            mongo.resume()
        await wait_stored(fleet, "order", dict.fromkeys(orders, 2))
        for order in orders:
            assert [e["type"] for e in await stored_events(fleet, "order", order)] == [
                "OrderPlaced",
                "OrderPaid",
            ]
        print(f"store paused: sent {2 * len(orders)} / accepted {2 * len(orders)} / stored "
              f"{2 * len(orders)} / lost 0 / doubled 0 / told wrong 0")  # fmt: skip


async def wait_store_holds(stack: EmbeddedStack, name: str, count: int, *, what: str) -> None:
    async def enough() -> bool:
        return len(await store_contents(stack, name)) >= count

    await wait_for(enough, timeout_s=120, what=what)


async def appender_under_load(
    stack: EmbeddedStack, name: str, orders: list[str], per_order: int
) -> tuple[FleetProcess, list[str]]:
    """An appender with a backlog, caught after it stored a few batches but not all."""
    first = FleetProcess.for_stack(stack, name, roles="appender", EVENTFLEET_BATCH_SIZE="100")
    await first.start()
    ids = await produce_requested(stack.urls.kafka_url, f"{first.prefix}events", orders, per_order)
    await wait_store_holds(stack, name, 200, what="the appender to store a few batches")
    return first, ids


async def restart_and_check(
    stack: EmbeddedStack,
    name: str,
    first: FleetProcess,
    ids: list[str],
    orders: list[str],
    per_order: int,
) -> tuple[FleetProcess, list[Any]]:
    """Restart the appender; every event stored once; return it and what events.stored holds."""
    second = await FleetProcess(env=first.env, roles="appender").start()
    try:
        await wait_store_holds(
            stack, name, len(ids), what=f"{len(ids)} stored events after the restart"
        )
        assert_exactly_once(await store_contents(stack, name), ids, orders, per_order)
        published = await read_until(
            stack.urls.kafka_url, f"{first.prefix}events.stored", expect=len(ids)
        )
    except BaseException:
        await second.killed()
        raise
    return second, published


async def test_killed_appender_loses_and_doubles_nothing(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    orders, per_order = [f"k-{i}" for i in range(40)], 50
    # Half the backlog first; the kill comes once a few batches are stored, and the other half
    # is produced only after it, so the killed appender never had all of it, however slow or
    # fast the machine is (a test that killed after the whole backlog raced the appender).
    first, ids = await appender_under_load(private_stack, unique_name, orders, per_order // 2)
    await first.killed()  # SIGKILL mid-stream: batches in flight, offsets not committed
    partial = len(await store_contents(private_stack, unique_name))
    ids += await produce_requested(
        private_stack.urls.kafka_url, f"{first.prefix}events", orders, per_order // 2,
        first_step=per_order // 2,
    )  # fmt: skip
    second, published = await restart_and_check(
        private_stack, unique_name, first, ids, orders, per_order
    )
    try:
        assert {decode(r.value).id for r in published} == set(ids)  # at least once downstream
        print(f"appender SIGKILLed under load: produced {len(ids)} / stored {len(ids)} (before "
              f"the kill {partial}) / lost 0 / doubled 0")  # fmt: skip
    finally:
        assert await second.stop() == 0


async def test_sigterm_under_load_drains_cleanly(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    orders, per_order = [f"t-{i}" for i in range(40)], 40
    first, ids = await appender_under_load(private_stack, unique_name, orders, per_order)
    assert await first.stop(timeout_s=30) == 0  # drained within the grace period
    second, published = await restart_and_check(
        private_stack, unique_name, first, ids, orders, per_order
    )
    try:
        counts = Counter(decode(r.value).id for r in published)
        assert set(counts) == set(ids)
        # A clean drain committed what it published: nothing is published twice.
        assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1][:5]
        print(f"appender SIGTERMed under load: produced {len(ids)} / stored {len(ids)} / lost 0 "
              f"/ doubled 0 / published twice 0")  # fmt: skip
    finally:
        assert await second.stop() == 0


async def test_an_error_no_retry_can_fix_stops_the_worker_and_loses_nothing(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    """A store that refuses a write for good (here a schema validator) must not stall a
    partition silently nor commit past the refused batch: the worker exits, and after the
    operator fixes the cause a restarted worker stores everything once."""
    orders = [f"v-{i}" for i in range(10)]
    client = connect(private_stack.urls.mongo_url, timeout_ms=5000)
    db = database(client, unique_name)
    await db.create_collection("events")
    await db.command("collMod", "events", validator={"aggregate_id": {"$ne": "v-3"}})
    first = FleetProcess.for_stack(private_stack, unique_name, roles="appender")
    await first.start()
    ids = await produce_requested(private_stack.urls.kafka_url, f"{first.prefix}events", orders, 2)
    assert first.process is not None
    code = await within(first.process.wait(), timeout_s=60, what="the appender to give up")
    assert code == 70, first.log_tail()  # EXIT_FATAL
    assert "cannot continue" in first.log_tail(80)
    assert len(await store_contents(private_stack, unique_name)) < len(ids)

    await db.command("collMod", "events", validator={})  # the operator's fix
    await client.close()
    second = await FleetProcess(env=first.env, roles="appender").start()
    try:
        await wait_store_holds(
            private_stack, unique_name, len(ids), what="every event after the fix"
        )
        assert_exactly_once(await store_contents(private_stack, unique_name), ids, orders, 2)
    finally:
        assert await second.stop() == 0


async def test_sync_append_with_kafka_down_is_stored_says_so_and_publishes_later(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    fleet = await FleetProcess.for_stack(
        private_stack, unique_name, roles="commands", EVENTFLEET_KAFKA_TIMEOUT_MS="1000"
    ).start()
    kafka = private_stack.process("kafka")
    client = connect(private_stack.urls.mongo_url, timeout_ms=5000)
    try:
        account = "acc-down"
        path = f"/v1/account/{account}/events"
        status, body = await fleet.post(path, {"type": "AccountOpened", "data": {"owner": "ada"}})
        assert status == 201
        kafka.pause()  # the broker stops answering; its topics survive (a restart would lose them)
        try:
            status, body = await fleet.post(path, {"type": "MoneyDeposited", "data": {"amount": 5}})
            # Stored is a success: 201, saying Kafka has not acknowledged it yet.
            assert status == 201 and body["published"] is False and body["version"] == 2, body
            stored_id = body["event_id"]
            _, events = await fleet.get(f"/v1/account/{account}/events")
            assert [e["version"] for e in events["events"]] == [1, 2]
        finally:
            kafka.resume()

        async def relayed() -> bool:
            doc = await database(client, unique_name)["events"].find_one({"_id": stored_id})
            return doc is not None and "pending_publish" not in doc

        await wait_for(relayed, timeout_s=60, what="the outbox relay to publish the stored event")
        records = await read_until(
            private_stack.urls.kafka_url, f"{fleet.prefix}events.stored", expect=2, timeout_s=30
        )
        published = [decode(r.value) for r in records if decode(r.value).version == 2]
        # At least once: a request the paused broker had already received may be applied on
        # resume next to the relay's copy; every copy is the same event, deduped by id.
        assert published and {(e.id, e.version) for e in published} == {(stored_id, 2)}
    finally:
        await client.close()
        await fleet.stop()
