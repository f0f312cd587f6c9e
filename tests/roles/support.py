"""What the role tests share: a small counter domain, stored-looking events, metric samples."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from snapshot_rules.domain import NEW, Domain, Route, event
from snapshot_rules.replay import State
from snapshot_rules.rules import every, interval, on
from topics.envelope import Event, Metadata, new_event
from workers.metrics import Metrics

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def add_up(state: State | None, e: Event) -> State:
    """The counter's pure reducer: a running total, and whether it was closed."""
    total = (state or {}).get("total", 0) + e.data.get("n", 0)
    return {"total": total, "closed": e.type == "Closed", "version": e.version}


COUNTER = Domain(
    name="counter",
    events={"Added": event(after=[NEW, "Added"]), "Closed": event(after=["Added"])},
    reducer=add_up,
    snapshot_rule=every(3) | on("Closed"),
    routes=(Route("counters"), Route("closings", frozenset({"Closed"}))),
)
TIMED = Domain(
    name="timed",
    events={"Added": event(after=[NEW, "Added"])},
    reducer=add_up,
    snapshot_rule=interval(60),
)


def added(
    aggregate_id: str,
    versions: Sequence[int],
    *,
    domain: str = "counter",
    at: datetime = T0,
    step: timedelta = timedelta(seconds=1),
    closing: int | None = None,
) -> list[Event]:
    """Stored-looking events of one aggregate: ``Added`` n=version (``Closed`` at ``closing``)."""
    return [
        new_event(
            domain,
            aggregate_id,
            "Closed" if version == closing else "Added",
            {"n": version},
            version=version,
            occurred_at=at + step * version,
            metadata=Metadata(client_id="tests", correlation_id=f"c-{aggregate_id}-{version}"),
        )
        for version in versions
    ]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """A metric's current value (0 when never touched)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


def retries(metrics: Metrics, role: str, service: str) -> float:
    return sample(metrics, "eventfleet_dependency_retries_total", role=role, service=service)
