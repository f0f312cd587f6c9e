"""Group lag read from the broker: it survives the consumers it measures, and fails visibly."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import generate_latest

from tests.fleet import FleetProcess
from tests.waiting import wait_for
from topics.errors import StreamUnavailable
from workers.adapters.kafka import KafkaLagReader, plain
from workers.devtools.embedded import EmbeddedStack, free_port
from workers.metrics import create_metrics
from workers.runtime.lag import LagExporter


async def prepare(
    bootstrap: str, topic: str, group: str, *, records: int, commit: dict[int, int]
) -> None:
    """A topic with ``records`` records on partition 0 and 1 alternately; ``group`` committed
    ``commit`` and left (no consumer of it is alive afterwards)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(records):
            await producer.send_and_wait(topic, b"x", partition=i % 2)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in commit])
        await consumer.commit({TopicPartition(topic, p): o for p, o in commit.items()})
    finally:
        await consumer.stop()


async def test_lag_of_a_group_with_no_live_consumer_is_read_from_the_broker(
    stack: EmbeddedStack, unique_name: str
) -> None:
    bootstrap = stack.urls.kafka_url.removeprefix("kafka://")
    topic, group = f"{unique_name}.events", f"{unique_name}-appender"
    await prepare(bootstrap, topic, group, records=10, commit={0: 3, 1: 5})
    metrics = create_metrics()
    groups = {group: [topic], f"{unique_name}-never-ran": [topic]}
    exporter = LagExporter(plain(bootstrap), metrics, groups, interval_s=60)
    await exporter._reader.start()
    try:
        await exporter.read_once()
    finally:
        await exporter.stop()
    text = generate_latest(metrics.registry).decode()
    assert (
        f'eventfleet_group_lag_events{{group="{group}",partition="0",topic="{topic}"}} 2.0' in text
    )
    assert (
        f'eventfleet_group_lag_events{{group="{group}",partition="1",topic="{topic}"}} 0.0' in text
    )
    assert "never-ran" not in text  # a group that never committed is not reported
    read_at = metrics.registry.get_sample_value("eventfleet_lag_read_timestamp_seconds")
    assert read_at is not None and read_at > 0


async def test_a_broker_that_does_not_answer_is_an_error_not_zero_lag() -> None:
    reader = KafkaLagReader(plain(f"127.0.0.1:{free_port()}", timeout_ms=300))
    with pytest.raises(StreamUnavailable, match="refused the lag reader's connection"):
        await reader.start()
    with pytest.raises(StreamUnavailable, match="start"):
        await reader.read({"g": ["t"]})


async def test_the_lag_role_serves_group_lag_and_probes(
    stack: EmbeddedStack, unique_name: str
) -> None:
    fleet = FleetProcess.for_stack(stack, unique_name, roles="lag", EVENTFLEET_LAG_INTERVAL_S="1")
    bootstrap = stack.urls.kafka_url.removeprefix("kafka://")
    await prepare(
        bootstrap, f"{unique_name}.events", f"{unique_name}-appender", records=4, commit={0: 1}
    )
    await fleet.start()
    try:

        async def exported() -> bool:
            _, text = await fleet.get("/metrics")
            return f'group="{unique_name}-appender",partition="0"' in text

        await wait_for(exported, timeout_s=30, what="the lag role to export the appender's lag")
        status, body = await fleet.get("/readyz")
        assert status == 200 and body["checks"] == {"started": True, "running": True}
    finally:
        assert await fleet.stop() == 0


async def test_the_reader_discovers_the_fleets_groups_by_prefix(
    stack: EmbeddedStack, unique_name: str
) -> None:
    bootstrap = stack.urls.kafka_url.removeprefix("kafka://")
    topic = f"{unique_name}.events"
    await prepare(bootstrap, topic, f"{unique_name}-dev", records=6, commit={0: 1, 1: 2})
    await prepare(
        bootstrap, f"{unique_name}.other", f"x{unique_name}-dev", records=2, commit={0: 1}
    )
    reader = KafkaLagReader(plain(bootstrap))
    await reader.start()
    try:
        found = await reader.groups(prefix=f"{unique_name}-")
        assert found == [f"{unique_name}-dev"]  # not x<name>-dev, which only contains the prefix
        topics = await reader.topics(prefix=f"{unique_name}.")
        assert topics == [topic, f"{unique_name}.other"]
        # .other was never read by the group: a discovered group reports what it committed.
        lags = await reader.read({}, discovered={found[0]: topics})
    finally:
        await reader.stop()
    assert sorted((lag.topic, lag.partition, lag.committed, lag.high_water) for lag in lags) == [
        (topic, 0, 1, 3),
        (topic, 1, 2, 3),
    ]


async def test_the_lag_role_measures_a_discovered_group_and_logs_no_error(
    stack: EmbeddedStack, unique_name: str
) -> None:
    fleet = FleetProcess.for_stack(stack, unique_name, roles="lag", EVENTFLEET_LAG_INTERVAL_S="1")
    bootstrap = stack.urls.kafka_url.removeprefix("kafka://")
    # What `eventfleet dev` runs as: <group_id>-dev, a name no role has.
    await prepare(
        bootstrap, f"{unique_name}.events", f"{unique_name}-dev", records=4, commit={1: 1}
    )
    await fleet.start()
    try:

        async def exported() -> bool:
            _, text = await fleet.get("/metrics")
            return f'group="{unique_name}-dev",partition="1",topic="{unique_name}.events"' in text

        await wait_for(exported, timeout_s=30, what="the lag role to export dev's group lag")
        log = fleet.log_path.read_text(errors="replace")
    finally:
        assert await fleet.stop() == 0
    assert "Traceback" not in log and "TypeError" not in log, log
    assert " ERROR " not in log, log
    assert " WARNING " not in log, log  # the test fleet has its master key: nothing to warn
