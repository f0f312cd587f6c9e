"""Workers create topics only when told; a missing topic or a partition mismatch stops them.

Every role would otherwise need CreateTopics, and a worker meeting topics with another
partition count would route keys to partitions other than their data's (order per aggregate).
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.cli import eventfleet
from tests.keys import master_key_env
from topics.catalog import TopicNames
from workers.devtools.embedded import EmbeddedStack, free_port


def worker_env(stack: EmbeddedStack, name: str, **extra: str) -> dict[str, str]:
    return {
        "EVENTFLEET_KAFKA_URL": stack.urls.kafka_url,
        "EVENTFLEET_MONGO_URL": stack.urls.mongo_url,
        "EVENTFLEET_REDIS_URL": stack.urls.redis_url,
        "EVENTFLEET_MONGO_DATABASE": name,
        "EVENTFLEET_TOPIC_PREFIX": f"{name}.",
        "EVENTFLEET_GROUP_ID": name,
        "EVENTFLEET_HTTP_PORT": str(free_port()),
        "EVENTFLEET_KAFKA_IDEMPOTENCE": "false",
        "EVENTFLEET_PARTITIONS": "3",
        "EVENTFLEET_AUTH": "none",  # these workers stop over topics, before any request
        **master_key_env(),
        **extra,
    }


async def test_a_worker_without_its_topics_stops_and_says_how_to_create_them(
    stack: EmbeddedStack, unique_name: str
) -> None:
    env = worker_env(stack, unique_name)  # EVENTFLEET_TOPICS_AUTO_CREATE unset: false
    code, _, err = await eventfleet("worker", "--role", "appender", env=env)
    assert code == 1, err
    assert f"topics {unique_name}.commands" in err
    assert "run `eventfleet topics ensure`" in err and "EVENTFLEET_TOPICS_AUTO_CREATE=true" in err
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls.kafka_url.removeprefix("kafka://"))
    await admin.start()
    try:
        assert not [t for t in await admin.list_topics() if t.startswith(unique_name)]
    finally:
        await admin.close()


async def test_a_partition_mismatch_stops_the_worker_naming_the_fix(
    stack: EmbeddedStack, unique_name: str
) -> None:
    env = worker_env(stack, unique_name)
    code, out, err = await eventfleet("topics", "ensure", env=env)
    assert code == 0, out + err
    env["EVENTFLEET_PARTITIONS"] = "5"
    env["EVENTFLEET_TOPICS_AUTO_CREATE"] = "true"  # creating is allowed; changing is not
    code, _, err = await eventfleet("worker", "--role", "appender", env=env)
    assert code == 1, err
    assert f"{unique_name}.events has 3 partitions, the catalog says 5" in err
    assert "Set EVENTFLEET_PARTITIONS=3" in err and "Changing the partition count" in err


async def test_created_topics_carry_min_insync_replicas_and_retention(
    stack: EmbeddedStack, unique_name: str
) -> None:
    env = worker_env(stack, unique_name, EVENTFLEET_TOPIC_RETENTION_MS="3600000")
    code, out, err = await eventfleet("topics", "ensure", env=env)
    assert code == 0, out + err
    names = TopicNames(f"{unique_name}.")
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls.kafka_url.removeprefix("kafka://"))
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, names.events)]
        )
    finally:
        await admin.close()
    configs = {
        entry[0]: entry[1]
        for response in described
        for resource in response.resources
        for entry in resource[4]
    }
    assert configs.get("retention.ms") == "3600000", configs
    assert configs.get("min.insync.replicas") == "1", configs


async def test_topics_are_created_by_a_worker_only_when_told(
    stack: EmbeddedStack, unique_name: str
) -> None:
    from tests.fleet import FleetProcess

    fleet = FleetProcess.for_stack(stack, unique_name, roles="appender")
    assert fleet.env["EVENTFLEET_TOPICS_AUTO_CREATE"] == "true"  # the test fleets' setting
    await fleet.start()
    try:
        status, _ = await fleet.get("/readyz")
        assert status == 200
    finally:
        assert await fleet.stop() == 0
