"""Process managers at the edges of a fault, on the real services (issue 47): one pipeline fleet
for the module (no pm role in it) and pm processes started, killed and restarted beside it.

A pm process SIGKILLed between storing its decision and sending its command (the command door
held: its Redis behind a paused proxy) loses nothing and doubles nothing once another takes
over; a deadline due while the role is down fires once after it restarts, and not for an order
paid meanwhile; two pm processes at once fire each deadline once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from tests.e2e.pm_domains import DOWN_PAYMENT_S, PAYMENT_S
from tests.e2e.pm_fleet import (
    history,
    instances_of,
    pay,
    place,
    pm_process,
    types_of,
    until_instance,
    until_stored,
)
from tests.faults import TcpProxy
from tests.fleet import FleetProcess, running_fleet
from tests.waiting import wait_for
from workers.adapters.mongo import MongoProcessInstances
from workers.devtools.embedded import EmbeddedStack
from workers.ports import DONE, Instance
from workers.runtime.fleet import JOIN_BOUND_SESSIONS


@pytest.fixture(scope="module")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    """The pipeline (commands, appender, …) without process managers: the pm role runs apart."""
    async with running_fleet(stack, f"pmf_{uuid.uuid4().hex[:8]}") as process:
        yield process


def uid() -> str:
    return uuid.uuid4().hex[:8]


def named(fleet: FleetProcess) -> str:
    return fleet.env["EVENTFLEET_MONGO_DATABASE"]


async def fired_total(process: FleetProcess) -> float:
    """``eventfleet_process_deadlines_total{outcome="fired"}`` of one pm process."""
    return await process.metric("eventfleet_process_deadlines_total", outcome="fired")


async def test_a_pm_killed_between_its_decision_and_its_command_sends_it_once_later(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    redis = urlsplit(stack.urls.redis_url)
    async with TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379) as proxy:
        url = stack.urls.redis_url.replace(f":{redis.port}", f":{proxy.port}", 1)
        first = pm_process(stack, named(fleet), EVENTFLEET_REDIS_URL=url)
        await first.start()
        order = f"killed-{uid()}"
        try:
            await place(fleet, order)
            async with instances_of(stack, named(fleet)) as store:
                await until_instance(store, "order_lifecycle", order)
                proxy.pause()  # the command door cannot answer: the decision is stored, not sent
                await pay(fleet, order)
                decided = await wait_decided(store, order)
                assert [c.type for c in decided.outbox] == ["ShipmentRequested"]
                await first.killed()  # SIGKILL, its command still unsent
        finally:
            first.kill()
            proxy.resume()
    assert await history(fleet, "shipment", order) == []
    second = await pm_process(stack, named(fleet)).start()
    try:
        await until_stored(fleet, "shipment", order, ["ShipmentRequested"])
        async with instances_of(stack, named(fleet)) as store:
            sent = await until_instance(store, "order_lifecycle", order, outbox=())
        assert sent.revision > decided.revision
        (requested,) = await history(fleet, "shipment", order)
        assert requested["metadata"]["command_id"] == decided.outbox[0].command_id
    finally:
        assert await second.stop() == 0


async def wait_decided(store: MongoProcessInstances, order: str) -> Instance:
    """The instance once it stored a decision it has not sent."""
    found: list[Instance] = []

    async def decided() -> bool:
        instance = (await store.load("order_lifecycle", [order])).get(order)
        if instance is None or not instance.outbox:
            return False
        found.append(instance)
        return True

    await wait_for(decided, timeout_s=30, interval_s=0.1, what=f"{order}'s decision stored")
    return found[-1]


async def test_a_deadline_due_while_the_role_is_down_fires_once_after_it_restarts(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    unpaid, paid = f"down-{uid()}", f"paid-while-down-{uid()}"
    slow = {"EVENTFLEET_PROCESSES": "tests.e2e.pm_domains:slow_processes"}
    first = await pm_process(stack, named(fleet), **slow).start()
    try:
        await place(fleet, unpaid)
        await place(fleet, paid)
        async with instances_of(stack, named(fleet)) as store:
            for order in (unpaid, paid):
                await until_instance(store, "order_lifecycle", order)
    finally:
        await first.killed()  # the role is down (its last offsets uncommitted: read again)
    await pay(fleet, paid)  # stored while no pm process runs
    async with instances_of(stack, named(fleet)) as store:
        waiting = (await store.load("order_lifecycle", [unpaid]))[unpaid]
        assert waiting.next_due is not None

        due = waiting.next_due

        def past_due() -> bool:
            return datetime.now(UTC) > due

        await wait_for(past_due, timeout_s=DOWN_PAYMENT_S + 10, interval_s=0.2,
                       what="the due time")  # fmt: skip
        assert await types_of(fleet, "order", unpaid) == ["OrderPlaced"]  # nothing fired it
        second = await pm_process(stack, named(fleet), **slow).start()
        try:
            await until_stored(fleet, "order", unpaid, ["OrderPlaced", "OrderCancelled"])
            ended = await until_instance(store, "order_lifecycle", unpaid, status=DONE)
            # The poll above fires without a partition; OrderPaid reaches the new process only
            # once it holds events.stored, after a join on a group whose leader was killed.
            await until_holding(second)
            await until_stored(fleet, "shipment", paid, ["ShipmentRequested"])
            shipping = await until_instance(store, "order_lifecycle", paid)
            assert shipping.deadlines == () and shipping.fired == ()  # seen before it fired
            assert await types_of(fleet, "order", paid) == ["OrderPlaced", "OrderPaid"]
            assert await fired_total(second) == 1
        finally:
            assert await second.stop() == 0
    (fired,) = ended.fired
    assert fired.fired_at > fired.due_at  # late: the role was down


SESSION_S = 3.0  # FleetProcess's EVENTFLEET_KAFKA_SESSION_TIMEOUT_MS
TANSU_JOIN_HOLD_S = 3.0  # Tansu holds a follower's JoinGroup this long (tests/e2e/test_join_heals)
KILLED_LEADER_JOIN_S = SESSION_S + JOIN_BOUND_SESSIONS * SESSION_S + 3 * TANSU_JOIN_HOLD_S + 30
"""From a pm process's start to its holding events.stored, in a group whose leader was killed: the
killed member's session runs out, a join Tansu holds under the departed leader heals after
JOIN_BOUND_SESSIONS session timeouts (workers.adapters.kafka.join), each join waits for the
broker's hold, and 30 s for a worker's start on two busy cores."""


async def until_holding(process: FleetProcess) -> None:
    """Until ``process``'s pm consumer holds partitions (``eventfleet_assigned_partitions``)."""

    async def holding() -> bool:
        return await process.metric("eventfleet_assigned_partitions", role="pm") > 0

    await wait_for(holding, timeout_s=KILLED_LEADER_JOIN_S, interval_s=0.2,
                   what="the restarted pm process holding events.stored")  # fmt: skip


async def test_two_pm_processes_fire_each_deadline_once(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    orders = [f"two-{uid()}" for _ in range(12)]
    first, second = pm_process(stack, named(fleet)), pm_process(stack, named(fleet))
    await asyncio.gather(first.launch(), second.launch())
    try:
        await wait_for(lambda: _both(first, second), timeout_s=60, interval_s=0.1,
                       what="two pm processes ready")  # fmt: skip
        for order in orders:
            await place(fleet, order)
        for order in orders:
            await until_stored(fleet, "order", order, ["OrderPlaced", "OrderCancelled"],
                               timeout_s=PAYMENT_S + 30)  # fmt: skip
        async with instances_of(stack, named(fleet)) as store:
            for order in orders:
                ended = await until_instance(store, "order_lifecycle", order, status=DONE)
                assert len(ended.fired) == 1
        fired = await fired_total(first) + await fired_total(second)
        assert fired == len(orders), f"{fired} firings for {len(orders)} deadlines"
    finally:
        assert await first.stop() == 0
        assert await second.stop() == 0


async def _both(first: FleetProcess, second: FleetProcess) -> bool:
    return await first.ready() and await second.ready()
