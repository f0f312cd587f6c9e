"""A running fleet counts its rebalances and commits and reports dependency health."""

from __future__ import annotations

from tests.fleet import FleetProcess, metric, order_items, samples
from tests.waiting import wait_for


async def test_rebalances_commits_and_dependencies_are_measured(fleet: FleetProcess) -> None:
    status, _ = await fleet.post(
        "/v1/order/ops-1/events", {"type": "OrderPlaced", "data": {"items": order_items()}}
    )
    assert status == 202

    async def measured() -> bool:
        _, text = await fleet.get("/metrics")
        return 'eventfleet_commit_latency_seconds_count{role="all"}' in text

    await wait_for(measured, timeout_s=30, what="an offset commit to be timed")
    _, text = await fleet.get("/metrics")
    assert metric(text, "eventfleet_rebalances_total", role="all") >= 1
    assert metric(text, "eventfleet_rebalance_duration_seconds_count", role="all") >= 1
    assert [s.value for s in samples(text, "eventfleet_commit_failures_total", role="all")] == [0]
    for service in ("store", "marker", "stream"):
        up = samples(text, "eventfleet_dependency_up", role="all", service=service)
        assert [s.value for s in up] == [1], service
    # Counters an alert watches exist at 0 from the start.
    oversized = samples(text, "eventfleet_dead_lettered_total", reason="oversized", role="appender")
    assert [s.value for s in oversized] == [0]
    status, health = await fleet.get("/healthz?verbose")
    assert status == 200 and health["status"] == "alive"
    assert {s: d["ok"] for s, d in health["dependencies"].items()} == {
        "marker": True,
        "store": True,
        "stream": True,
    }
