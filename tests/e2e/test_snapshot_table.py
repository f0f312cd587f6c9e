"""The snapshotter's rule states live in a Faust table: they survive restarts and rebalances."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.fleet import FleetProcess
from tests.waiting import wait_for
from topics.envelope import encode, kafka_headers, new_event
from workers.adapters.mongo import MongoEventStore, MongoSnapshotStore, connect, database
from workers.devtools.embedded import EmbeddedStack

TALLIES = [f"t{i}" for i in range(24)]
MISSES = "eventfleet_snapshot_rule_misses_total"


async def stored(
    stack: EmbeddedStack, fleet: FleetProcess, name: str, versions: Sequence[int]
) -> None:
    """Every tally at ``versions``, stored and on events.stored, as the appender would leave them."""
    events = [new_event("tally", t, "Counted", {}, version=v) for v in versions for t in TALLIES]
    client = connect(stack.urls.mongo_url, timeout_ms=10_000)
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.urls.kafka_url.removeprefix("kafka://"), acks="all", linger_ms=5
    )
    await producer.start()
    try:
        store = MongoEventStore(database(client, name))
        await store.ensure_indexes()
        await store.append(sorted(events, key=lambda e: (e.aggregate_id, e.version or 0)))
        sent = [await producer.send(f"{fleet.prefix}events.stored", encode(e), key=e.key,
                                    headers=kafka_headers(e)) for e in events]  # fmt: skip
        for future in sent:
            await future
    finally:
        await producer.stop()
        await client.close()


async def snapshot_versions(stack: EmbeddedStack, name: str) -> dict[str, int]:
    client = connect(stack.urls.mongo_url, timeout_ms=10_000)
    try:
        snapshots = MongoSnapshotStore(database(client, name))
        found = await snapshots.load_many([("tally", t) for t in TALLIES])
        return {ref[1]: snap.version for ref, snap in found.items()}
    finally:
        await client.close()


async def misses(fleet: FleetProcess) -> float:
    return await fleet.metric(MISSES)


def snapshotter(stack: EmbeddedStack, name: str) -> FleetProcess:
    return FleetProcess.for_stack(
        stack, name, roles="snapshotter", EVENTFLEET_DOMAINS="tests.e2e.counting:domains",
        EVENTFLEET_AUDIT_INTERVAL_S="0",
    )  # fmt: skip


async def test_rule_states_survive_a_restart_and_a_rebalance(
    stack: EmbeddedStack, unique_name: str
) -> None:
    first = await snapshotter(stack, unique_name).start()
    try:
        await stored(stack, first, unique_name, [1, 2])

        async def all_known() -> bool:
            return await misses(first) == len(TALLIES)  # each read once: nothing in the table yet

        await wait_for(all_known, timeout_s=60, what="the first snapshotter to see every tally")
        assert await snapshot_versions(stack, unique_name) == {}  # 2 events: every(3) waits
    finally:
        assert await first.stop() == 0
    # Two snapshotters in the group: the partitions are split, each recovers its share.
    pair = [await snapshotter(stack, unique_name).start() for _ in range(2)]
    try:
        await stored(stack, pair[0], unique_name, [3])

        async def all_snapshotted() -> bool:
            return await snapshot_versions(stack, unique_name) == dict.fromkeys(TALLIES, 3)

        await wait_for(all_snapshotted, timeout_s=90, what="every tally snapshotted at 3")
        # The third event was counted from the recovered table: no snapshot document was read.
        assert [await misses(p) for p in pair] == [0.0, 0.0]

        async def no_lag_left() -> bool:  # the changelog (read for recovery only) is no lag
            series = [line for p in pair for line in (await p.get("/metrics"))[1].splitlines()
                      if line.startswith("eventfleet_consumer_lag_events{")]  # fmt: skip
            return bool(series) and all(line.endswith(" 0.0") for line in series)

        await wait_for(no_lag_left, timeout_s=60, what="every lag series at 0")
    finally:
        for process in pair:
            assert await process.stop() == 0
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls.kafka_url.removeprefix("kafka://"))
    await admin.start()
    try:
        topic = f"{unique_name}.snapshot-rules.changelog"
        [described] = await admin.describe_topics([topic])
        assert len(described["partitions"]) == 4  # as many as events.stored
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {c[0]: c[1] for c in configs[0].resources[0][4]}
        assert entries.get("cleanup.policy") == "compact"
    finally:
        await admin.close()
