"""``tests.fleet.metric`` and ``samples``: how the end-to-end tests read a process's /metrics."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.fleet import metric, samples


@pytest.fixture
def page() -> str:
    registry = CollectorRegistry()
    requests = Counter("eventfleet_requests", "", ["outcome", "role"], registry=registry)
    requests.labels(outcome="accepted", role="commands").inc(3)
    requests.labels(outcome="accepted", role="all").inc(2)
    requests.labels(outcome="rejected", role="all").inc()
    Counter("eventfleet_refusals", "", ["reason"], registry=registry)  # never moved
    Gauge("eventfleet_waiters", "", registry=registry).set(4)
    Histogram("eventfleet_latency_seconds", "", registry=registry).observe(0.2)
    return generate_latest(registry).decode()


def test_the_samples_whose_labels_include_those_asked_are_summed(page: str) -> None:
    assert metric(page, "eventfleet_requests_total", outcome="accepted") == 5
    assert metric(page, "eventfleet_requests_total", outcome="accepted", role="all") == 2
    assert metric(page, "eventfleet_requests_total") == 6
    assert metric(page, "eventfleet_waiters") == 4
    assert metric(page, "eventfleet_latency_seconds_count") == 1


def test_a_declared_series_not_moved_yet_reads_zero_and_has_no_sample(page: str) -> None:
    assert metric(page, "eventfleet_refusals_total", reason="expired") == 0
    assert samples(page, "eventfleet_requests_total", outcome="unknown") == []
    assert [s.value for s in samples(page, "eventfleet_requests_total", role="commands")] == [3]


@pytest.mark.parametrize(
    "name", ["eventfleet_request_total", "eventfleet_waiter", "eventfleet_latency_count", ""]
)
def test_a_name_the_page_does_not_declare_fails_instead_of_reading_zero(
    page: str, name: str
) -> None:
    with pytest.raises(AssertionError, match="is not declared on the page"):
        metric(page, name)
