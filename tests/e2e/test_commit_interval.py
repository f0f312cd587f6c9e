"""When a consumer commits: every ``EVENTFLEET_KAFKA_COMMIT_INTERVAL_MS`` while it is busy, and at
once when an agent has settled all it was fetched (``workers.stream.commits``).

The consumers' offsets tell how far the appender has decided: a refusal of an aggregate whose
newest event is still in flight is answered once the appender's group has committed past it, or
once the store's head is that event (``workers.roles.command.refusals``);
``tests/bench/refusal_wait.py`` measures the wait.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.committed import committed
from tests.fleet import FleetProcess, metric, order_items
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack
from workers.metrics import REFUSAL_DECISIONS
from workers.runtime.compose import ROLES, Runtime
from workers.runtime.fleet import Fleet
from workers.runtime.settings import Settings


@pytest.mark.parametrize(("raw", "seconds"), [(None, 1.0), ("50", 0.05), ("60000", 60.0)])
async def test_the_interval_is_every_consumers_commit_interval(
    stack: EmbeddedStack, unique_name: str, raw: str | None, seconds: float
) -> None:
    env = FleetProcess.for_stack(stack, unique_name).env | {"EVENTFLEET_HTTP_PORT": "0"}
    if raw is not None:
        env["EVENTFLEET_KAFKA_COMMIT_INTERVAL_MS"] = raw
    runtime = await Runtime.start(Settings.from_env(env))
    try:
        fleet = Fleet(runtime, ROLES, app_id=f"commits-{uuid.uuid4().hex[:6]}")
        assert fleet.app.conf.broker_commit_interval == seconds
    finally:
        await runtime.stop()


async def test_an_appender_that_caught_up_commits_without_waiting_for_the_interval(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """With periodic commits a minute apart, the stored event's commit comes at once all the
    same; the refusal sent while that event was in flight is answered 409."""
    fleet = FleetProcess.for_stack(
        stack,
        unique_name,
        EVENTFLEET_KAFKA_COMMIT_INTERVAL_MS="60000",
        EVENTFLEET_REFUSAL_WAIT_MS="30000",
    )
    group, topic = f"{unique_name}-all", f"{unique_name}.events"
    await fleet.start()
    try:
        placed = {"type": "OrderPlaced", "data": {"items": order_items()}}
        status, accepted = await fleet.post("/v1/order/o-1/events", placed)
        assert status == 202, accepted
        partition, end = accepted["partition"], accepted["offset"] + 1
        # Sent at once: the event it must follow is most likely still in flight, and then
        # the refusal waits for the appender.
        status, refused = await fleet.post(
            "/v1/order/o-1/events", {"type": "OrderShipped", "data": {"carrier": "dhl"}}
        )
        assert status == 409 and refused["error"] == "transition_rejected", refused
        status, page = await fleet.get("/metrics")
        assert status == 200, page
        counted = "eventfleet_refusal_checks_total"
        decided = {d: metric(page, counted, decided=d) for d in REFUSAL_DECISIONS}
        assert sum(decided.values()) == 1 and decided["not_yet"] == 0, decided

        async def passed() -> bool:
            now = await committed(stack.urls.kafka_url, group, topic)
            return now.get(partition, -1) >= end

        await wait_for(passed, timeout_s=30, what="the appender's commit past the order")
    finally:
        code = await fleet.stop()
    assert code == 0
