"""Kafka as the console's action tests set it up and read it back, beside the fleet: a topic
the fleet does not own created, its two partitions filled, a group's offsets committed by a
consumer that then leaves, what a group has committed, and every record of a topic."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.fleet import FleetProcess
from workers.adapters.kafka import plain
from workers.adapters.kafka.reader import read_topic


def kafka_url(fleet: FleetProcess) -> str:
    return fleet.env["EVENTFLEET_KAFKA_URL"].removeprefix("kafka://")


async def create(fleet: FleetProcess, name: str, partitions: int) -> str:
    """Topic ``name`` with ``partitions`` partitions on the fleet's Kafka; its name."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url(fleet))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def records_of(fleet: FleetProcess, topic: str) -> list[Any]:
    return await read_topic(plain(fleet.env["EVENTFLEET_KAFKA_URL"]), topic)


async def filled(fleet: FleetProcess, topic: str, per_partition: int) -> None:
    """``per_partition`` records on each of partitions 0 and 1 of ``topic``."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_url(fleet), acks="all")
    await producer.start()
    try:
        for partition in (0, 1):
            for n in range(per_partition):
                await producer.send_and_wait(topic, f"r{n}".encode(), partition=partition)
    finally:
        await producer.stop()


async def commit(fleet: FleetProcess, group: str, offsets: dict[TopicPartition, int]) -> None:
    """``offsets`` committed for ``group`` by a consumer that leaves at once."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_url(fleet), group_id=group,
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def committed(fleet: FleetProcess, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` committed on partitions 0 and 1 of ``topic``, by partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url(fleet))
    await admin.start()
    try:
        wanted = [TopicPartition(topic, p) for p in (0, 1)]
        listed = await admin.list_consumer_group_offsets(group, partitions=wanted)
    finally:
        await admin.close()
    return {tp.partition: m.offset for tp, m in listed.items() if m.offset >= 0}
