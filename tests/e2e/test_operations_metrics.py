"""A running fleet counts its rebalances and commits and reports dependency health."""

from __future__ import annotations

from tests.fleet import FleetProcess, order_items
from tests.waiting import wait_for


def value(text: str, series: str) -> float:
    line = next((x for x in text.splitlines() if x.startswith(series + " ")), None)
    assert line is not None, f"{series} is not exposed"
    return float(line.split()[-1])


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
    assert value(text, 'eventfleet_rebalances_total{role="all"}') >= 1
    assert value(text, 'eventfleet_rebalance_duration_seconds_count{role="all"}') >= 1
    assert value(text, 'eventfleet_commit_failures_total{role="all"}') == 0
    for service in ("store", "marker", "stream"):
        assert value(text, f'eventfleet_dependency_up{{role="all",service="{service}"}}') == 1
    # Counters an alert watches exist at 0 from the start.
    assert value(text, 'eventfleet_dead_lettered_total{reason="oversized",role="appender"}') == 0
    status, health = await fleet.get("/healthz?verbose")
    assert status == 200 and health["status"] == "alive"
    assert {s: d["ok"] for s, d in health["dependencies"].items()} == {
        "marker": True,
        "store": True,
        "stream": True,
    }
