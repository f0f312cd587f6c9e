"""A join that heals, on the embedded Tansu: two members leave follower-then-leader, which
leaves the group naming a departed leader; the next member is assigned within the bound because
its join watch (``workers.adapters.kafka.join``) joins again as that leader; two members left
behind together heal it once, one taking that id, and share it. Without the watch the same
member is never assigned; with no way to heal left, it gives up and says why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.kafka_groups import SESSION_MS, assigned, group_member, leave_follower_then_leader
from tests.waiting import wait_for, within
from workers.adapters.kafka.join import JoinWatch
from workers.devtools.embedded import EmbeddedStack

BOUND_S = 3 * SESSION_MS / 1000  # the fleet's bound: three session timeouts
PARTITIONS = 4


async def _poisoned(stack: EmbeddedStack, name: str) -> tuple[str, str]:
    """A topic and a group whose members left follower, then leader: Tansu keeps the leader."""
    topic, group = f"{name}.t", f"{name}-g"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls.kafka_url.split("://")[1])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    await leave_follower_then_leader(stack, group, topic)
    return topic, group


@asynccontextmanager
async def _starting(consumer: AIOKafkaConsumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(consumer.start())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


async def test_the_next_member_is_assigned_within_the_bound(
    stack: EmbeddedStack, unique_name: str
) -> None:
    topic, group = await _poisoned(stack, unique_name)
    acts: list[str] = []
    watch = JoinWatch(bound_s=BOUND_S, on_heal=acts.append)
    member = group_member(stack, group, topic)
    watch.install(member)
    began = time.monotonic()
    async with _starting(member) as started:
        await within(
            started, timeout_s=BOUND_S + 4 * SESSION_MS / 1000, what="the next member to start"
        )
        await assigned(member, timeout_s=10)
        took = time.monotonic() - began
        assert len(member.assignment()) == PARTITIONS  # every partition, no phantom member
        assert acts == ["adopt_leader"] and watch.joined and not watch.gave_up
    print(f"poisoned group (follower, then leader left): next member assigned in {took:.1f} s "
          f"(bound {BOUND_S:g} s), {len(acts)} heal")  # fmt: skip


async def test_two_members_left_behind_together_heal_it_once_and_share_it(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """Two members joining the poisoned group at once reach their bound within milliseconds of
    each other: only one takes the departed leader's id (were both to, the broker would see one
    member twice, each process holding every partition or fencing the other for ever), and the
    group forms with each holding half, every partition once."""
    topic, group = await _poisoned(stack, unique_name)
    acts: list[str] = []
    members = [group_member(stack, group, topic) for _ in range(2)]
    watches = [JoinWatch(bound_s=BOUND_S, on_heal=acts.append) for _ in members]
    for watch, member in zip(watches, members, strict=True):
        watch.install(member)

    async def shared() -> bool:
        await asyncio.gather(*(member.getmany(timeout_ms=50) for member in members))
        held = [{tp.partition for tp in member.assignment()} for member in members]
        return [len(h) for h in held] == [2, 2] and held[0] | held[1] == set(range(PARTITIONS))

    try:
        starts = asyncio.gather(*(member.start() for member in members))
        await within(
            starts, timeout_s=2 * BOUND_S + 4 * SESSION_MS / 1000, what="both members to start"
        )
        await wait_for(shared, timeout_s=2 * BOUND_S, what="each half held", interval_s=0.05)
    finally:
        await asyncio.gather(*(member.stop() for member in members))
    assert acts.count("adopt_leader") <= 1, acts  # never both: one id, one member
    assert not any(watch.gave_up for watch in watches)


async def test_without_the_watch_the_next_member_is_never_assigned(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """The evidence the watch is needed: the same group, the same member, no watch."""
    topic, group = await _poisoned(stack, unique_name)
    member = group_member(stack, group, topic)
    async with _starting(member) as started:
        done, _ = await asyncio.wait({started}, timeout=2 * BOUND_S)
        assert not done and not member.assignment()


async def test_a_member_that_cannot_heal_gives_up_and_says_why(
    stack: EmbeddedStack, unique_name: str
) -> None:
    topic, group = await _poisoned(stack, unique_name)
    acts: list[str] = []
    reasons: list[str] = []
    watch = JoinWatch(bound_s=BOUND_S, on_heal=acts.append, on_stuck=reasons.append,
                      give_up_after=0)  # fmt: skip
    member = group_member(stack, group, topic)
    watch.install(member)
    async with _starting(member):
        await wait_for(lambda: bool(reasons), timeout_s=BOUND_S + 15, what="the member gives up")
    assert acts == ["give_up"] and watch.gave_up
    assert f"the join of group {group} did not complete" in reasons[0]
    assert "restarted" in reasons[0]


async def test_a_group_that_forms_is_never_acted_on(stack: EmbeddedStack, unique_name: str) -> None:
    topic, group = f"{unique_name}.t", f"{unique_name}-g"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls.kafka_url.split("://")[1])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    acts: list[str] = []
    first, second = group_member(stack, group, topic), group_member(stack, group, topic)
    for member in (first, second):
        JoinWatch(bound_s=BOUND_S, on_heal=acts.append).install(member)
    try:
        await first.start()
        await assigned(first, timeout_s=30)
        await second.start()
        await assigned(second, timeout_s=30)
    finally:
        await second.stop()
        await first.stop()
    assert acts == []


async def test_a_leader_still_among_the_members_is_never_impersonated(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """The guard before a member takes a leader's id: the group's members, as Tansu describes
    them. A live leader is among them (nothing is taken); a departed one is not."""
    topic, group = f"{unique_name}.t", f"{unique_name}-g"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls.kafka_url.split("://")[1])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    leader = group_member(stack, group, topic)
    try:
        await leader.start()
        await assigned(leader, timeout_s=30)
        node, send = leader._coordinator.coordinator_id, leader._client.send
        watch = JoinWatch(bound_s=BOUND_S)
        assert await watch._members(send, node, group) == {leader._coordinator.member_id}
        assert await watch._members(send, node, f"{group}-unknown") == set()
    finally:
        await leader.stop()
