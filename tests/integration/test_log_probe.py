"""The log's word on an unanswered produce, read from the embedded Tansu (``KafkaLogProbe``):
a landed record is found where the key's partition holds it, from the first record stamped
since the send; an absent one is not, after the grace; a broker that cannot be reached is no
absence."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.kafka_topics import produce_raw
from topics.envelope import utc_now
from topics.errors import StreamUnavailable
from workers.adapters.kafka import plain
from workers.adapters.kafka.probe import KafkaLogProbe
from workers.adapters.partitions import partition_for
from workers.devtools.embedded import EmbeddedStack

PARTITIONS = 4


async def _topic_with(stack: EmbeddedStack, topic: str, records: list[tuple[bytes, str]]) -> None:
    boot = stack.urls.kafka_url.removeprefix("kafka://")
    admin = AIOKafkaAdminClient(bootstrap_servers=boot)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    await produce_raw(
        stack.urls.kafka_url,
        topic,
        [(key, b"{}", [("event_id", event_id.encode())]) for key, event_id in records],
    )


async def test_a_landed_record_is_found_on_its_keys_partition(
    stack: EmbeddedStack, unique_name: str
) -> None:
    topic = f"{unique_name}.events"
    before = utc_now() - timedelta(seconds=5)
    ids = [str(uuid.uuid4()) for _ in range(12)]
    records = [(f"order:o{i % 5}".encode(), event_id) for i, event_id in enumerate(ids)]
    await _topic_with(stack, topic, records)
    probe = KafkaLogProbe(plain(stack.urls.kafka_url), grace_s=0.2)
    for key, event_id in records[::3]:
        found = await probe.find(topic, key, event_id, since=before)
        assert found is not None and found.partition == partition_for(key, PARTITIONS)
    # Stamped long before ``since`` (its producer's clock): still found, within the skew.
    key, event_id = records[0]
    assert await probe.find(topic, key, event_id, since=utc_now() + timedelta(minutes=1))


async def test_an_absent_record_is_absent_after_the_grace(
    stack: EmbeddedStack, unique_name: str
) -> None:
    topic = f"{unique_name}.events"
    await _topic_with(stack, topic, [(b"order:o1", str(uuid.uuid4()))])
    probe = KafkaLogProbe(plain(stack.urls.kafka_url), grace_s=0.5)
    began = time.monotonic()
    assert await probe.find(topic, b"order:o1", "never-sent", since=utc_now()) is None
    assert time.monotonic() - began >= 0.5  # it read again after the grace
    # The same id on another key's partition is not this key's event.
    other = next(k for k in (b"order:o2", b"order:o3", b"order:o4")
                 if partition_for(k, PARTITIONS) != partition_for(b"order:o1", PARTITIONS))  # fmt: skip
    await _produce(stack, topic, other, "elsewhere")
    assert await probe.find(topic, b"order:o1", "elsewhere", since=utc_now()) is None


async def _produce(stack: EmbeddedStack, topic: str, key: bytes, event_id: str) -> None:
    await produce_raw(
        stack.urls.kafka_url, topic, [(key, b"{}", [("event_id", event_id.encode())])]
    )


async def test_the_events_asked_about_at_once_are_answered_by_one_read(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """Twenty questions at once, on every partition: one sweep, two consumers, each answer the
    one a question alone gets (landed where its key's partition holds it; absent; an id that is
    only on another key's partition is not this key's)."""
    topic = f"{unique_name}.events"
    before = utc_now() - timedelta(seconds=5)
    landed = [(f"order:o{i}".encode(), str(uuid.uuid4())) for i in range(12)]
    await _topic_with(stack, topic, landed)
    key = b"order:o1"
    other = next(k for k, _ in landed if partition_for(k, PARTITIONS) != partition_for(key,
                                                                                       PARTITIONS))  # fmt: skip
    await _produce(stack, topic, other, "on-another-partition")
    probe = KafkaLogProbe(plain(stack.urls.kafka_url), grace_s=0.2)
    absent = [(f"order:o{i}".encode(), f"never-{i}") for i in range(7)]
    asked = [*landed, *absent, (key, "on-another-partition")]
    answers = await asyncio.gather(*(probe.find(topic, k, e, since=before) for k, e in asked))
    assert probe.sweeps == 1
    for (k, _), found in zip(landed, answers, strict=False):
        assert found is not None and found.partition == partition_for(k, PARTITIONS)
    assert answers[len(landed) :] == [None] * (len(absent) + 1)
    # Asked once that read is over: a read of its own, after the question.
    again = await probe.find(topic, *landed[0], since=before)
    assert again == answers[0] and probe.sweeps == 2


async def test_a_broker_that_does_not_answer_is_no_absence() -> None:
    probe = KafkaLogProbe(plain("127.0.0.1:1", timeout_ms=300), grace_s=0.1)
    with pytest.raises(StreamUnavailable, match="stays unknown"):
        await probe.find("t.events", b"order:o1", "e-1", since=utc_now())


def test_the_delivery_bound_follows_the_timeout_and_an_idempotent_producer_has_none() -> None:
    assert KafkaLogProbe(plain("127.0.0.1:9092", timeout_ms=1000)).delivery_bound_s() == 4.0
    idempotent = replace(plain("127.0.0.1:9092", timeout_ms=1000), idempotence=True)
    assert KafkaLogProbe(idempotent).delivery_bound_s() is None
