"""The lag and throughput ring buffer and its SVG chart; the pages' escaping."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge

from tests.clock import Clock
from workers.http.console.html import json_block, page, path, table
from workers.http.console.samples import Sampler, counter_total, gauge_total, svg_chart


def test_throughput_is_the_counter_rate_between_samples_and_the_buffer_is_bounded() -> None:
    clock, counted, lag = Clock(), [0.0], [7.0]
    sampler = Sampler(
        lag=lambda: lag[0], count=lambda: counted[0], interval_s=5, keep=3, clock=clock
    )
    first = sampler.sample()
    assert (first.lag, first.throughput) == (7.0, 0.0)  # no rate from one reading
    for step in range(1, 5):
        clock.now += 5
        counted[0] += 50 * step
        lag[0] = step
        sampler.sample()
    assert [s.throughput for s in sampler.samples] == [20.0, 30.0, 40.0]
    assert [s.lag for s in sampler.samples] == [2, 3, 4]
    counted[0] = 0  # a restarted counter is no negative rate
    clock.now += 5
    assert sampler.sample().throughput == 0.0


def test_totals_sum_every_series_of_a_metric() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("g", "g", ["p"], registry=registry)
    gauge.labels("0").set(3)
    gauge.labels("1").set(4)
    counter = Counter("c", "c", ["r"], registry=registry)
    counter.labels("a").inc(2)
    counter.labels("b").inc(5)
    assert gauge_total(gauge) == 7.0
    assert counter_total(counter) == 7.0  # the _created series are not counted


def test_the_chart_draws_one_point_per_sample_within_its_box() -> None:
    svg = svg_chart(
        [(0.0, 0.0), (5.0, 10.0), (10.0, 5.0)], title="lag <x>", unit="events", css_class="lag"
    )
    [points] = re.findall(r'points="([^"]+)"', svg)
    pairs = [tuple(map(float, p.split(","))) for p in points.split()]
    assert len(pairs) == 3
    assert all(0 <= x <= 600 and 0 <= y <= 160 for x, y in pairs)
    assert pairs[1][1] < pairs[2][1] < pairs[0][1]  # higher values are drawn higher
    assert "lag &lt;x&gt;: 5 events" in svg and "<x>" not in svg


def test_a_chart_without_two_samples_says_it_is_collecting() -> None:
    svg = svg_chart([(0.0, 1.0)], title="throughput", unit="events/s", css_class="t")
    assert "collecting samples" in svg and "polyline" not in svg


def test_pages_escape_whatever_the_stores_hold() -> None:
    hostile = '<script>alert("x")</script>'
    html = page(hostile, table(("h",), [(json_block({"k": hostile}),)]), actions=False)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "read-only" in html
    assert path("aggregates", "order", "a/b c") == "/console/aggregates/order/a%2Fb%20c"
