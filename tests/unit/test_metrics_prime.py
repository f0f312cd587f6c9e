"""Every labelled counter exists at 0 for its known labels before its first increment."""

from __future__ import annotations

from prometheus_client import generate_latest

from workers.metrics import REFUSAL_DECISIONS, SERVICES, create_metrics, prime
from workers.roles.deadletter import REASONS


def exposition(**kwargs: object) -> str:
    metrics = create_metrics()
    prime(metrics, **kwargs)  # type: ignore[arg-type]
    return generate_latest(metrics.registry).decode()


def test_known_label_sets_are_exposed_at_zero() -> None:
    text = exposition(
        role="appender",
        roles=["appender"],
        dead_letter_reasons=REASONS,
        aggregate_types=["order"],
        event_types=[("order", "OrderPlaced")],
        projections=["chat_messages"],
        downstream_topics=["p.orders"],
    )
    for reason in REASONS:
        assert f'eventfleet_dead_lettered_total{{reason="{reason}",role="appender"}} 0.0' in text
    for service in SERVICES:
        assert (
            f'eventfleet_dependency_retries_total{{role="appender",service="{service}"}} 0.0'
            in text
        )
    assert 'eventfleet_snapshots_written_total{aggregate_type="order",trigger="rule"} 0.0' in text
    assert (
        'eventfleet_requests_total{aggregate_type="order",event_type="OrderPlaced",'
        'outcome="error_marker"} 0.0' in text
    )
    assert 'eventfleet_rebalances_total{role="appender"} 0.0' in text
    assert 'eventfleet_events_forwarded_total{topic="p.orders"} 0.0' in text
    assert (
        'eventfleet_projection_events_total{outcome="skipped",projection="chat_messages"}' in text
    )
    for decided in REFUSAL_DECISIONS:
        assert f'eventfleet_refusal_checks_total{{decided="{decided}"}} 0.0' in text


def test_a_process_without_the_commands_role_has_no_refusal_series() -> None:
    text = exposition(
        role="appender", roles=["appender"], dead_letter_reasons=REASONS, aggregate_types=["order"]
    )
    assert "eventfleet_refusal_checks_total{" not in text


def test_without_priming_a_labelled_counter_has_no_series() -> None:
    # What the alert rules could not see before: no series until the first increment.
    text = generate_latest(create_metrics().registry).decode()
    assert "eventfleet_dead_lettered_total{" not in text
