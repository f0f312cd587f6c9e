"""A metric is one declaration: ``create`` makes every declared field, of its declared kind, with
its name, help, labels and buckets; a name taken twice or a malformed declaration is refused."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from workers.metric_kinds import (
    Declared,
    LoopCounter,
    LoopHistogram,
    counter,
    create,
    declared,
    histogram,
)
from workers.metrics import LiveMetrics, Metrics, ProcessMetrics, RywMetrics, create_metrics

KINDS = {
    "counter": Counter,
    "gauge": Gauge,
    "histogram": Histogram,
    "loop_counter": LoopCounter,
    "loop_histogram": LoopHistogram,
}
DECLARING = (Metrics, LiveMetrics, RywMetrics, ProcessMetrics)


@dataclass(frozen=True, slots=True)
class Small:
    registry: CollectorRegistry
    sent: Counter = counter("x_sent_total", "Sent, by kind.", labels=("kind",))
    took: Histogram = histogram("x_took_seconds", "Took.", buckets=(0.1, 1.0))


@pytest.mark.parametrize("cls", DECLARING, ids=lambda c: c.__name__)
def test_every_field_is_declared_and_made_as_its_kind(cls: type[Metrics]) -> None:
    declarations = dict(declared(cls))
    assert {f.name for f in fields(cls)} - {"registry"} == set(declarations)
    made = create(cls, CollectorRegistry())
    for name, metric in declarations.items():
        assert isinstance(getattr(made, name), KINDS[metric.kind]), name


def test_no_name_is_declared_twice_across_the_metrics_classes() -> None:
    # A process may carry all four in one registry: it would refuse a name taken twice.
    names = [metric.name for cls in DECLARING for _, metric in declared(cls)]
    assert len(names) == len(set(names))
    registry = CollectorRegistry()
    for cls in DECLARING:
        create(cls, registry)


def test_a_declaration_is_exposed_with_its_name_help_labels_and_buckets() -> None:
    small = create(Small, CollectorRegistry())
    small.sent.labels("room").inc()
    small.took.observe(0.5)
    text = generate_latest(small.registry).decode()
    assert "# HELP x_sent_total Sent, by kind." in text
    assert 'x_sent_total{kind="room"} 1.0' in text
    assert 'x_took_seconds_bucket{le="0.1"} 0.0' in text
    assert 'x_took_seconds_bucket{le="1.0"} 1.0' in text


def test_a_registry_refuses_the_same_metrics_twice() -> None:
    registry = CollectorRegistry()
    create_metrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        create_metrics(registry)


def test_a_loop_counter_declared_with_other_than_one_label_is_refused() -> None:
    for labels in ((), ("kind", "via")):
        bad = Declared("loop_counter", "x_total", "X.", labels)
        with pytest.raises(ValueError):
            bad.make(CollectorRegistry())


def test_a_class_without_a_registry_field_gets_only_its_metrics() -> None:
    live = create(LiveMetrics, CollectorRegistry())
    assert not hasattr(live, "registry")
