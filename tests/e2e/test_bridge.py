"""The bridge role republishes events.stored to Redis and NATS; mapper events travel as their own."""

from __future__ import annotations

import uuid

from tests.auditing import errors, settled_audit
from tests.fleet import FleetProcess, order_items
from tests.kafka_topics import read_until
from tests.waiting import wait_for
from topics.envelope import Event, decode
from workers.adapters.mongo import MongoDocuments, connect, database
from workers.adapters.nats import NatsEventBus
from workers.adapters.redis import RedisEventBus
from workers.devtools.embedded import EmbeddedStack
from workers.examples.storage.fleet import domains_with_storage
from workers.runtime.buses import nats_stream
from workers.storage import ChangeEvents, EventSourcedStorage, FieldChangedMapper

NATS_URL = "nats://127.0.0.1:4222"
DOMAINS = "workers.examples.storage.fleet:domains_with_storage"
EXPECTED = {"OrderPlaced", "AccountOpened", "UserCreated", "UserUpdated", "UserEmailChanged"}


def bridge(stack: EmbeddedStack, name: str, bus: str) -> FleetProcess:
    """A bridge process of its own group (one per bus), on the fleet's topics and domains."""
    return FleetProcess.for_stack(
        stack, name, roles="bridge", EVENTFLEET_DOMAINS=DOMAINS, EVENTFLEET_BRIDGE_BUS=bus,
        EVENTFLEET_GROUP_ID=f"{name}-{bus}", EVENTFLEET_NATS_URL=NATS_URL,
    )  # fmt: skip


async def test_the_bridge_carries_stored_and_mapped_events_to_redis_and_nats(
    stack: EmbeddedStack, unique_name: str
) -> None:
    prefix = f"{unique_name}."
    redis_bus = RedisEventBus(stack.urls.redis_url, stream=f"{prefix}events.stored",
                              group_prefix=f"{prefix}test")  # fmt: skip
    nats_bus = NatsEventBus(NATS_URL, stream=nats_stream(prefix), subject_prefix=f"{prefix}events")
    got: dict[str, list[Event]] = {"redis": [], "nats": [], "emails": []}

    def keep(where: str):  # type: ignore[no-untyped-def]
        async def handler(event: Event) -> None:
            got[where].append(event)

        return handler

    await redis_bus.subscribe("*", keep("redis"))
    await nats_bus.subscribe("*", keep("nats"))
    await nats_bus.subscribe("UserEmailChanged", keep("emails"))
    fleet = FleetProcess.for_stack(
        stack, unique_name, EVENTFLEET_DOMAINS=DOMAINS, EVENTFLEET_KAFKA_TIMEOUT_MS="2000"
    )
    bridges = [bridge(stack, unique_name, bus) for bus in ("redis", "nats")]
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        for process in (fleet, *bridges):
            await process.start()
        order = f"o-{uuid.uuid4().hex[:6]}"
        placed = await fleet.post(f"/v1/order/{order}/events",
                                  {"type": "OrderPlaced", "data": {"items": order_items()}})  # fmt: skip
        opened = await fleet.post("/v1/account/a-1/events",
                                  {"type": "AccountOpened", "data": {"owner": "ada"}})  # fmt: skip
        assert (placed[0], opened[0]) == (202, 201), (placed, opened)
        users = EventSourcedStorage(
            MongoDocuments(database(client, unique_name), "users"),
            events=ChangeEvents(type_prefix="User"),
            mapper=FieldChangedMapper("email", "UserEmailChanged", "new_email"),
        )  # fmt: skip
        await users.find_one_and_upsert({"_id": "u1", "email": "a@b.c"}, client_id="signup")
        await users.find_one_and_update("u1", lambda u: {**u, "email": "new@b.c"}, client_id="p")
        await users.close()  # no outbox here: the fleet's relay publishes the stored changes

        def arrived() -> bool:
            return all({e.type for e in got[bus]} >= EXPECTED for bus in ("redis", "nats"))

        await wait_for(arrived, timeout_s=60, what=f"every event on both buses: {got}")
        [email] = {e.id: e for e in got["emails"]}.values()  # at least once: dedupe by id
        assert (email.aggregate_id, email.version, dict(email.data)) == (
            "u1",
            2,
            {"new_email": "new@b.c"},
        )
        records = await read_until(stack.urls.kafka_url, f"{prefix}user_emails", expect=1)
        assert [decode(r.value).id for r in records] == [email.id]  # routed as its own record
        report = await settled_audit(stack, unique_name, domains=domains_with_storage())
        assert errors(report) == []
    finally:
        for process in (*bridges, fleet):
            if process.process is not None:
                assert await process.stop() == 0
        await redis_bus.close()
        await nats_bus.close()
        await client.close()
