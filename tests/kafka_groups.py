"""Consumer groups on the embedded Tansu as the join tests drive them: a member with a short
session, waiting for its assignment, and a group left naming a departed leader (the follower
left, then at once the leader), which is what a join watch must heal."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack

SESSION_MS = 3000


def group_member(
    stack: EmbeddedStack, group: str, topic: str, **options: object
) -> AIOKafkaConsumer:
    """A member of ``group`` on ``topic`` (not started) with a 3 s session and manual commits."""
    return AIOKafkaConsumer(
        topic, bootstrap_servers=stack.urls.kafka_url.split("://")[1], group_id=group,
        session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500, enable_auto_commit=False,
        retry_backoff_ms=200, request_timeout_ms=40_000, **options,
    )  # fmt: skip


async def assigned(consumer: AIOKafkaConsumer, *, timeout_s: float) -> None:
    """Poll ``consumer`` until it holds partitions, within ``timeout_s``."""

    async def has() -> bool:
        await consumer.getmany(timeout_ms=50)
        return bool(consumer.assignment())

    await wait_for(has, timeout_s=timeout_s, what="an assignment", interval_s=0.05)


async def leave_follower_then_leader(
    stack: EmbeddedStack, group: str, topic: str, **options: object
) -> None:
    """Two members join ``group`` on ``topic`` and leave, the follower and at once the leader:
    Tansu keeps naming the leader. ``options`` go to both consumers (an assignor, say).

    The leader leaves as soon as the follower's stop returns: it would rejoin in between (and
    re-form the group, clearing the departed leader) only if its heartbeat fell in the
    milliseconds between the follower's LeaveGroup and its own stop."""
    leader = group_member(stack, group, topic, **options)
    await leader.start()
    await assigned(leader, timeout_s=30)
    follower = group_member(stack, group, topic, **options)
    await follower.start()
    await assigned(follower, timeout_s=30)
    await follower.stop()
    await leader.stop()
