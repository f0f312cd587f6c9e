"""A join that heals, with a fleet process (issue 38): the appenders' group is left in the state
that follower-then-leader leaving puts Tansu in (it keeps naming the departed leader), and the
next appender process is still assigned, within the bound (three session timeouts) and one more
join, and stores what the commands role accepts. Its metrics say it healed.

Two fleet appenders stopped follower-then-leader poison the group only when the leader has not
rejoined in between, a race the test cannot decide (the leader rejoins at its next heartbeat,
while its drain runs). So the group is poisoned by two plain members of the same group and
protocol that leave at once, as ``tests/integration/test_join_heals.py`` does, and the process
that must heal is the fleet's.
"""

from __future__ import annotations

import time
import uuid

from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from tests.fleet import FleetProcess, metric, order_items
from tests.kafka_groups import leave_follower_then_leader
from tests.stress import CPU_STRESS, stressed
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack

SESSION_MS = 3000  # FleetProcess's EVENTFLEET_KAFKA_SESSION_TIMEOUT_MS
BOUND_S = 3 * SESSION_MS / 1000  # workers.runtime.fleet.JOIN_BOUND_SESSIONS session timeouts
TANSU_FOLLOWER_PAUSE_S = 3.0  # Tansu holds a follower's JoinGroup this long


class FaustProtocol(RoundRobinPartitionAssignor):
    """The protocol name the fleet's consumers join with (Faust's), so that the group the plain
    members leave is one a fleet member joins as it would after its own kind left it."""

    name = "faust"


@CPU_STRESS
async def test_the_next_appender_is_assigned_after_follower_then_leader_left(
    private_stack: EmbeddedStack, unique_name: str, stress: bool
) -> None:
    async with stressed(stress):
        await _follower_then_leader(
            private_stack, unique_name, "under stress-ng --cpu 2: " if stress else ""
        )


async def _follower_then_leader(private_stack: EmbeddedStack, unique_name: str, label: str) -> None:
    commands = FleetProcess.for_stack(private_stack, unique_name, roles="commands")
    after = FleetProcess.for_stack(private_stack, unique_name, roles="appender")
    try:
        await commands.start()  # the fleet's topics exist from here
        await leave_follower_then_leader(
            private_stack,
            f"{unique_name}-appender",
            f"{unique_name}.events",
            partition_assignment_strategy=(FaustProtocol,),
        )
        began = time.monotonic()
        await after.start(timeout_s=BOUND_S + 4 * TANSU_FOLLOWER_PAUSE_S + 30)
        ready_s = time.monotonic() - began
        _, text = await after.get("/metrics")
        rejoins = "eventfleet_group_rejoins_total"
        assert metric(text, rejoins, action="adopt_leader", role="appender") == 1, text
        assert metric(text, rejoins, action="give_up", role="appender") == 0, text
        order = f"o-{uuid.uuid4().hex[:6]}"
        status, body = await commands.post(
            f"/v1/order/{order}/events", {"type": "OrderPlaced", "data": {"items": order_items()}}
        )
        assert status == 202, body

        async def stored() -> bool:
            status, told = await commands.get(
                f"/v1/order/{order}/outcome?event_id={body['event_id']}"
            )
            return status == 200 and told["outcome"] == "stored"

        await wait_for(stored, timeout_s=30, what="the healed appender stores an event")
        print(f"{label}follower then leader left: the next appender ready in {ready_s:.1f} s "
              f"(bound {BOUND_S:g} s, start included), healed once, and it stores")  # fmt: skip
    finally:
        for process in (after, commands):
            if process.process is not None:
                await process.stop()
