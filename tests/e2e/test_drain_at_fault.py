"""Each consumer role SIGTERMed while the dependency its work needs is frozen (issue 19): it leaves
within its drain timeout, commits nothing it could not finish, and a successor finishes it after
the thaw. (The appender with the store frozen and the commands role with Kafka frozen are in
``test_edges_of_a_fault``.)"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer

from tests.e2e.committed import committed, positions
from tests.fleet import FleetProcess, metric, order_items
from tests.waiting import wait_for, within
from topics.envelope import Event, encode, kafka_headers, new_event
from workers.adapters.mongo import (
    MongoEventStore,
    MongoSnapshotStore,
    MongoViewStore,
    connect,
    database,
)
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains.chat_room import CHAT_MESSAGES

DRAIN_S = 6
EXIT_DRAIN_TIMEOUT = 75


@dataclass(frozen=True)
class Case:
    """A role, the embedded service its work needs, and stored events that give it work."""

    role: str
    frozen: str  # the private stack's process: mongo, redis or kafka
    aggregate: str
    projection: str | None = None


CASES = {
    "snapshotter": Case("snapshotter", "mongo", "order"),  # OrderCancelled: a snapshot is due
    "projection": Case("projection", "mongo", "chat_room", CHAT_MESSAGES.name),
    "bridge": Case("bridge", "redis", "order"),  # the Redis bus
    "forwarder": Case("forwarder", "kafka", "order"),  # reads and writes the frozen broker
}


def histories(case: Case, prefix: str, count: int) -> list[Event]:
    events: list[Event] = []
    for i in range(count):
        aggregate_id = f"{prefix}-{i}"
        if case.aggregate == "order":
            steps = [("OrderPlaced", {"items": order_items()}), ("OrderCancelled", {"reason": "x"})]
        else:
            steps = [("MessageSent", {"message_id": f"m{n}", "sender_id": "ann", "content": f"hi {n}"})
                     for n in range(3)]  # fmt: skip
        events += [
            new_event(case.aggregate, aggregate_id, kind, data, version=v)
            for v, (kind, data) in enumerate(steps, start=1)
        ]
    return events


async def store_then_announce(stack: EmbeddedStack, name: str, events: list[Event]) -> None:
    """What the appender does: store the events, then produce them to events.stored."""
    client = connect(stack.urls.mongo_url, timeout_ms=10_000)
    try:
        await MongoEventStore(database(client, name)).append(events)
    finally:
        await client.close()
    await announce(stack, name, events)


async def announce(stack: EmbeddedStack, name: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.urls.kafka_url.removeprefix("kafka://"), acks="all"
    )
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(f"{name}.events.stored", encode(event), key=event.key,
                                         headers=kafka_headers(event))  # fmt: skip
    finally:
        await producer.stop()


async def done(stack: EmbeddedStack, case: Case, name: str, events: list[Event]) -> bool:
    """Every aggregate has the role's effect in the store (where it has one to check)."""
    refs = list(dict.fromkeys((e.aggregate_type, e.aggregate_id) for e in events))
    client = connect(stack.urls.mongo_url, timeout_ms=10_000)
    try:
        db = database(client, name)
        if case.role == "snapshotter":
            found = await MongoSnapshotStore(db).load_many(refs)
            return all(ref in found and found[ref].version == 2 for ref in refs)
        if case.role == "projection":
            views = await MongoViewStore(db, CHAT_MESSAGES.collection).load_many(refs)
            return all(ref in views and views[ref].version == 3 for ref in refs)
        return True
    finally:
        await client.close()


async def committed_to_end(stack: EmbeddedStack, group: str, topic: str) -> bool:
    ends: dict[int, int] = {}
    for p in await positions(stack.urls.kafka_url, topic):
        ends[p.partition] = max(ends.get(p.partition, 0), p.offset + 1)
    now = await committed(stack.urls.kafka_url, group, topic)
    return all(now.get(partition, -1) >= end for partition, end in ends.items())


async def retries(process: FleetProcess, role: str) -> float:
    status, page = await process.get("/metrics")
    if status != 200:
        return 0.0
    return sum(metric(page, "eventfleet_dependency_retries_total", role=role, service=s)
               for s in ("store", "bus", "stream", "marker"))  # fmt: skip


@pytest.mark.parametrize("which", sorted(CASES))
async def test_a_role_stopped_while_its_dependency_is_frozen_leaves_in_time_and_commits_nothing_undone(
    private_stack: EmbeddedStack, unique_name: str, which: str
) -> None:
    case = CASES[which]
    env = {
        "EVENTFLEET_DRAIN_TIMEOUT_S": str(DRAIN_S),
        "EVENTFLEET_MONGO_TIMEOUT_MS": "1000",
        "EVENTFLEET_REDIS_TIMEOUT_MS": "500",
        "EVENTFLEET_KAFKA_TIMEOUT_MS": "1000",
        "EVENTFLEET_BRIDGE_BUS": "redis",
    }

    def process() -> FleetProcess:
        return FleetProcess.for_stack(private_stack, unique_name, roles=case.role,
                                      projection=case.projection, **env)  # fmt: skip

    suffix = f"projection-{case.projection}" if case.projection else case.role
    group, topic = f"{unique_name}-{suffix}", f"{unique_name}.events.stored"
    worker = await process().start()
    warm, held = histories(case, "warm", 2), histories(case, "held", 4)
    try:
        await store_then_announce(private_stack, unique_name, warm)
        await wait_for(lambda: committed_to_end(private_stack, group, topic), timeout_s=60,
                       what="the warm-up committed")  # fmt: skip
        await wait_for(lambda: done(private_stack, case, unique_name, warm), timeout_s=30,
                       what="the warm-up's effect")  # fmt: skip
        frozen = private_stack.process(case.frozen)
        if case.frozen == "kafka":
            await store_then_announce(private_stack, unique_name, held)
            frozen.pause()
        else:
            client = connect(private_stack.urls.mongo_url, timeout_ms=10_000)
            try:
                await MongoEventStore(database(client, unique_name)).append(held)
            finally:
                await client.close()
            frozen.pause()
            await announce(private_stack, unique_name, held)
        try:
            if case.frozen != "kafka":
                before = await committed(private_stack.urls.kafka_url, group, topic)
                await wait_for(lambda: _retrying(worker, case.role), timeout_s=60,
                               what=f"the {case.role} retrying the frozen {case.frozen}")  # fmt: skip
            assert worker.process is not None
            started = time.monotonic()
            worker.process.send_signal(15)  # SIGTERM: a rollout, a scale-down
            code = await within(
                worker.process.wait(), timeout_s=DRAIN_S + 10, what=f"the {case.role} to leave"
            )
            took = time.monotonic() - started
            assert took <= DRAIN_S + 1.5, (
                f"{case.role} took {took:.1f}s to leave (drain {DRAIN_S}s)\n{worker.log_tail()}"
            )
            if case.frozen != "kafka":
                assert code == EXIT_DRAIN_TIMEOUT, f"a drain that could not finish says so ({code})"
                after = await committed(private_stack.urls.kafka_url, group, topic)
                assert after == before, (
                    f"committed past work it could not finish: {before} -> {after}"
                )
            else:
                assert code in (0, EXIT_DRAIN_TIMEOUT), code
        finally:
            frozen.resume()
        print(f"{case.role} with {case.frozen} frozen: left in {took:.1f}s (drain {DRAIN_S}s), "
              f"exit {code}")  # fmt: skip
        successor = await process().start()
        try:
            await wait_for(lambda: committed_to_end(private_stack, group, topic), timeout_s=90,
                           what="the successor committed to the end")  # fmt: skip
            await wait_for(lambda: done(private_stack, case, unique_name, held), timeout_s=60,
                           what="the successor finished the held work")  # fmt: skip
        finally:
            assert await successor.stop() == 0
    finally:
        worker.kill()


async def _retrying(worker: FleetProcess, role: str) -> bool:
    return await retries(worker, role) > 0
