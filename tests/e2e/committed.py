"""What a consumer group committed, held against what the store holds: the commit discipline;
and what the store holds counted (events stored, ids stored twice)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from topics.envelope import decode
from topics.errors import InvalidEnvelope
from workers.adapters.mongo import connect, database
from workers.devtools.embedded import EmbeddedStack


@dataclass(frozen=True, slots=True)
class Position:
    """One record of the events topic: where it is and which event it carries (None: poison)."""

    partition: int
    offset: int
    event_id: str | None


async def committed(kafka_url: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset (the next to read) per partition; -1 where none."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url.removeprefix("kafka://"))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return {tp.partition: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


async def positions(kafka_url: str, topic: str) -> list[Position]:
    """Every record of ``topic`` (all partitions, from the start), read up to the end offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_url.removeprefix("kafka://"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads the cluster's metadata
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        partitions = [TopicPartition(topic, p) for p in numbers]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Position] = []
        async with asyncio.timeout(30):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                    for record in records:
                        try:
                            event_id: str | None = decode(record.value).id
                        except InvalidEnvelope:
                            event_id = None
                        found.append(Position(tp.partition, record.offset, event_id))
        return found
    finally:
        await consumer.stop()


async def decided_ids(mongo_url: str, db_name: str) -> set[str]:
    """Ids the store holds or refused (the appender's written-down decisions)."""
    client = connect(mongo_url, timeout_ms=10_000)
    try:
        db = database(client, db_name)
        stored = {str(d["_id"]) async for d in db["events"].find({}, projection={"_id": 1})}
        refused = {str(d["_id"]) async for d in db["rejections"].find({}, projection={"_id": 1})}
        return stored | refused
    finally:
        await client.close()


async def store_counts(stack: EmbeddedStack, db_name: str) -> tuple[int, int]:
    """(events stored, ids stored more than once): the unique index makes the second zero."""
    client = connect(stack.urls.mongo_url, timeout_ms=10_000)
    try:
        ids = [
            str(d["_id"]) async for d in database(client, db_name)["events"].find({}, {"_id": 1})
        ]
    finally:
        await client.close()
    return len(ids), len(ids) - len(set(ids))


async def commits_past_undecided(
    kafka_url: str,
    mongo_url: str,
    *,
    group: str,
    topic: str,
    db_name: str,
    decided: set[str] | None = None,
) -> list[Position]:
    """Records below the group's committed offsets whose events the store neither holds nor
    refused (poison is dead-lettered, so it counts as decided). Must always be empty.

    ``decided``: the store's decisions when the store cannot be asked (it is frozen).
    """
    commits = await committed(kafka_url, group, topic)
    records = await positions(kafka_url, topic)
    if decided is None:
        decided = await decided_ids(mongo_url, db_name)
    return [
        r
        for r in records
        if r.offset < commits.get(r.partition, -1)
        and r.event_id is not None
        and r.event_id not in decided
    ]
