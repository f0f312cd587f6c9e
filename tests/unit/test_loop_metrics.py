"""The loop metrics (counted by the event loop alone, without a lock) are exposed exactly as
prometheus_client's Counter and Histogram would expose the same observations."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from workers.metric_kinds import LoopCounter, LoopHistogram
from workers.metrics import LATENCY_BUCKETS_S

CREATED = re.compile(rb"^(\S+_created(?:\{[^}]*\})?) \S+$", re.MULTILINE)


def exposed(registry: CollectorRegistry) -> bytes:
    """The text exposition without the creation times (they differ by when each was made)."""
    return CREATED.sub(rb"\1 <created>", generate_latest(registry))


def test_a_loop_counter_is_exposed_as_a_counter_by_one_label() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = LoopCounter("x_sent_total", "Sent.", "kind", ours)
    reference = Counter("x_sent_total", "Sent.", ["kind"], registry=theirs)
    for kind, amount in (("aggregate", 3), ("room", 1), ("aggregate", 2)):
        counter.labels(kind).inc(amount)
        reference.labels(kind).inc(amount)
    counter.labels("view")
    reference.labels("view")  # a label value primed at zero is exposed too
    assert exposed(ours) == exposed(theirs)


def test_a_loop_histogram_is_exposed_as_a_histogram_with_the_same_buckets() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    histogram = LoopHistogram("x_delivery_seconds", "Latency.", LATENCY_BUCKETS_S, ours)
    reference = Histogram("x_delivery_seconds", "Latency.", buckets=LATENCY_BUCKETS_S,
                          registry=theirs)  # fmt: skip
    for amount in (0.0, 0.0005, 0.0007, 0.01, 0.3, 5.0, 7.5, 0.01):  # bounds are inclusive
        histogram.observe(amount)
        reference.observe(amount)
    assert exposed(ours) == exposed(theirs)


def test_an_amount_observed_several_times_at_once_is_as_many_observations() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    histogram = LoopHistogram("x_delivery_seconds", "Latency.", LATENCY_BUCKETS_S, ours)
    reference = Histogram("x_delivery_seconds", "Latency.", buckets=LATENCY_BUCKETS_S,
                          registry=theirs)  # fmt: skip
    histogram.observe(0.25, 10)  # one event's ten deliveries of one flush
    histogram.observe(0.5, 0)  # none: nothing observed
    for _ in range(10):
        reference.observe(0.25)
    assert exposed(ours) == exposed(theirs)
