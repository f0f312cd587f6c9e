"""The ``eventfleet`` command: help, settings errors, ``topics ensure`` against the embedded broker."""

from __future__ import annotations

import asyncio
import os
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from topics.catalog import TopicNames
from workers.adapters.kafka import ensure_topics
from workers.devtools.embedded import EmbeddedStack
from workers.runtime.compose import load_domains
from workers.runtime.connections import fleet_catalog, kafka_config
from workers.runtime.settings import Settings


async def eventfleet(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", *args, env={**clean, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_help_lists_the_commands_and_every_variable() -> None:
    code, out, _ = await eventfleet("--help")
    assert code == 0
    for command in ("dev", "worker", "topics", "projections", "replay", "bench"):
        assert command in out
    for variable in (
        "EVENTFLEET_KAFKA_URL",
        "EVENTFLEET_MONGO_URL",
        "EVENTFLEET_REDIS_URL",
        "EVENTFLEET_PARTITIONS",
    ):
        assert variable in out


async def test_a_bad_setting_stops_the_command_and_names_the_variable() -> None:
    code, _, err = await eventfleet("topics", "ensure", env={"EVENTFLEET_PARTITIONS": "-3"})
    assert code == 2
    assert "EVENTFLEET_PARTITIONS='-3' is invalid" in err


async def test_an_unknown_projection_fails_before_connecting() -> None:
    code, _, err = await eventfleet(
        "worker",
        "--role",
        "projection",
        "--projection",
        "nope",
        env={"EVENTFLEET_KAFKA_URL": "kafka://127.0.0.1:1"},
    )
    assert code == 1 and "nope" in err


async def test_topics_ensure_creates_missing_topics_and_reports_mismatches(
    stack: EmbeddedStack, unique_name: str
) -> None:
    env = {
        "EVENTFLEET_KAFKA_URL": stack.urls.kafka_url,
        "EVENTFLEET_TOPIC_PREFIX": f"{unique_name}.",
        "EVENTFLEET_PARTITIONS": "3",
    }
    settings = Settings.from_env(env)
    names = TopicNames(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(names.dlq, 1, 1)]
        )  # exists with the wrong partition count
    finally:
        await admin.close()

    code, out, err = await eventfleet("topics", "ensure", env=env)
    assert code == 1, err  # a mismatch is reported and fails the command
    assert f"mismatch  {names.dlq} has 1 partitions, the catalog says 3" in out
    assert f"created   {names.events}" in out and f"created   {names.name('orders')}" in out

    specs = fleet_catalog(settings, load_domains(settings.domains))
    again = {
        report.name: report.status for report in await ensure_topics(kafka_config(settings), specs)
    }
    assert again[names.events] == "ok" and again[names.dlq] == "mismatch"
    assert set(again) == {spec.name for spec in specs}


async def test_topics_ensure_with_kafka_down_is_a_clear_error() -> None:
    code, _, err = await eventfleet(
        "topics",
        "ensure",
        env={"EVENTFLEET_KAFKA_URL": "kafka://127.0.0.1:1", "EVENTFLEET_KAFKA_TIMEOUT_MS": "500"},
    )
    assert code == 1 and "did not answer" in err
