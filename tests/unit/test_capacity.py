"""The capacity model: what a target needs follows from the costs, and the plot is valid SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from workers.devtools.bench.capacity import TARGETS, Costs, first_to_saturate, plan, render
from workers.devtools.bench.plot import scale_svg


def test_the_plan_covers_the_target_with_every_process_within_its_headroom() -> None:
    costs = Costs(commands_cpu_ms=0.4, appender_cpu_ms=0.25, downstream_cpu_ms=0.05)
    for rate in TARGETS:
        p = plan(rate, costs)
        assert p.commands_pods * costs.per_process(0.4) >= rate
        assert (p.commands_pods - 1) * costs.per_process(0.4) < rate
        assert p.appender_pods * costs.per_process(0.25) >= rate
        # every appender process owns at least one partition, and doubling keeps shares even
        assert p.partitions >= max(p.appender_pods, p.downstream_pods)
        assert p.partitions & (p.partitions - 1) == 0
        assert p.mongo_shards * costs.mongo_inserts_per_shard >= rate
        assert p.redis_shards * costs.redis_calls_per_shard >= rate * costs.redis_calls_per_event
    assert plan(100_000, costs).cores > plan(10_000, costs).cores * 9


def test_what_saturates_first_is_the_lowest_ceiling() -> None:
    assert first_to_saturate(Costs(commands_cpu_ms=0.5, appender_cpu_ms=0.2)).startswith(
        "a commands process"
    )
    assert first_to_saturate(Costs(commands_cpu_ms=0.1, appender_cpu_ms=0.3)).startswith(
        "an appender process"
    )
    slow_store = Costs(commands_cpu_ms=0.01, appender_cpu_ms=0.01, mongo_inserts_per_shard=900)
    assert first_to_saturate(slow_store).startswith("a MongoDB shard")
    text = render(Costs())
    assert "1,000,000" in text and "saturates first:" in text


def test_the_scale_plot_is_well_formed_svg_with_both_series() -> None:
    svg = scale_svg([(1, 1434.0, 0.33), (2, 1614.0, 0.35), (4, 1094.0, 0.53)], "a <title> & more")
    root = ET.fromstring(svg)
    polylines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(polylines) == 2
    assert all(len(p.attrib["points"].split()) == 3 for p in polylines)
    assert "a &lt;title&gt; &amp; more" in svg


def test_a_plot_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        scale_svg([], "empty")
