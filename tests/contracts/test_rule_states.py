"""The RuleStates contract: the snapshot rule's memory per aggregate, bounded, read from memory.

On the in-memory one and on the fleet's, a Faust table whose writes go to a compacted changelog
topic on the embedded Kafka (the producer started, as in a running worker).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import faust
import pytest

from tests.kafka_topics import create_topic
from workers.adapters.memory import MemoryRuleStates
from workers.devtools.embedded import EmbeddedStack
from workers.ports import RuleState, RuleStates
from workers.stream.rule_table import FaustRuleStates, rule_table

PARTITIONS = 2
Make = Callable[[int], RuleStates]
"""A rule-state store that keeps at most that many aggregates."""


@pytest.fixture(params=("memory", "faust"))
async def rule_states(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Make]:
    if request.param == "memory":
        yield lambda most: MemoryRuleStates(max_entries=most)
        return
    topic = f"{unique_name}.snapshot-rules"
    await create_topic(stack.urls.kafka_url, topic, partitions=PARTITIONS)
    app = faust.App(
        f"rules-{uuid.uuid4().hex[:8]}", broker=stack.urls.kafka_url, store="memory://",
        datadir=tempfile.mkdtemp(prefix="rule-states-"), producer_acks=-1,
    )  # fmt: skip
    await app.producer.start()
    await app.producer._producer.partitions_for(topic)  # the partitioner needs the metadata

    def make(most: int) -> RuleStates:
        return FaustRuleStates(
            rule_table(app, topic=topic, partitions=PARTITIONS), max_entries=most
        )

    try:
        yield make
    finally:
        await app.producer.flush()
        await app.producer.stop()


async def test_a_state_reads_back_as_it_was_put(rule_states: Make) -> None:
    states = rule_states(100)
    ref = ("order", "o1")
    assert states.get(ref) is None
    when = datetime(2026, 3, 1, 12, 0, 0, 5000, tzinfo=UTC)
    states.put(ref, RuleState(7, when))
    assert states.get(ref) == RuleState(7, when)
    states.put(ref, RuleState(9))  # a newer snapshot; its event time not known
    assert states.get(ref) == RuleState(9, None)
    assert states.get(("order", "o2")) is None


async def test_beyond_its_bound_the_oldest_states_are_forgotten(rule_states: Make) -> None:
    states = rule_states(3)
    for n in range(5):
        states.put(("order", f"o{n}"), RuleState(n))
    # Forgotten ones read as unknown (the snapshotter then reads the snapshot once): never wrong.
    assert [states.get(("order", f"o{n}")) for n in range(5)] == [
        None, None, RuleState(2), RuleState(3), RuleState(4),
    ]  # fmt: skip
