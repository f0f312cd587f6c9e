"""Lag and throughput over the last minutes: sampled in-process into a ring buffer, drawn as SVG."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

KEEP = 120
"""Samples kept: 10 minutes at the default 5 s interval."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: total lag in events, and events per second since the previous reading."""

    at: float  # unix seconds
    lag: float
    throughput: float


def gauge_total(metric: Collector) -> float:
    """The sum of every series of a Prometheus gauge."""
    return float(sum(s.value for family in metric.collect() for s in family.samples))


def counter_total(metric: Collector) -> float:
    """The sum of every ``_total`` series of a Prometheus counter."""
    return float(
        sum(
            s.value
            for family in metric.collect()
            for s in family.samples
            if s.name.endswith("_total")
        )
    )


class Sampler:
    """Reads ``lag()`` and ``count()`` every ``interval_s``; keeps the last ``keep`` samples."""

    def __init__(
        self,
        *,
        lag: Callable[[], float],
        count: Callable[[], float],
        interval_s: float,
        keep: int = KEEP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lag = lag
        self._count = count
        self.interval_s = interval_s
        self._clock = clock
        self.samples: deque[Sample] = deque(maxlen=keep)
        self._last: tuple[float, float] | None = None
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> Sample:
        now, count = self._clock(), self._count()
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = max(0.0, count - self._last[1]) / (now - self._last[0])
        self._last = (now, count)
        taken = Sample(now, self._lag(), rate)
        self.samples.append(taken)
        return taken

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="eventfleet-console-samples")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception as e:  # a chart is not worth a crash: the gap shows in it
                log.warning("console sample failed: %r", e)
            await asyncio.sleep(self.interval_s)


WIDTH, HEIGHT, PAD = 600, 160, 34


def svg_chart(
    points: Sequence[tuple[float, float]], *, title: str, unit: str, css_class: str
) -> str:
    """An inline SVG line chart of (time, value) points: axes, the max label and the line."""
    label = html.escape(title)
    if len(points) < 2:
        return (
            f'<svg class="chart {css_class}" role="img" aria-label="{label}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">'
            f'<text x="{PAD}" y="{HEIGHT // 2}">{label}: collecting samples…</text></svg>'
        )
    t0, t1 = points[0][0], points[-1][0]
    top = max(max(v for _, v in points), 1.0)
    span = max(t1 - t0, 1e-9)

    def xy(t: float, v: float) -> str:
        x = PAD + (t - t0) / span * (WIDTH - 2 * PAD)
        y = HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(t, v) for t, v in points)
    last = points[-1][1]
    return (
        f'<svg class="chart {css_class}" role="img" aria-label="{label}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">'
        f"<title>{label}</title>"
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#888"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>'
        f'<text x="2" y="{PAD + 4}" font-size="11">{top:.3g}</text>'
        f'<text x="2" y="{HEIGHT - PAD + 4}" font-size="11">0</text>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">-{span:.0f} s</text>'
        f'<text x="{WIDTH - PAD - 30}" y="{HEIGHT - 8}" font-size="11">now</text>'
        f'<text x="{PAD + 8}" y="{PAD - 10}" font-size="12">{label}: {last:.3g} {html.escape(unit)}'
        "</text>"
        f'<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="{line}"/></svg>'
    )


def charts(samples: Iterable[Sample]) -> str:
    """The lag and throughput charts of the kept samples."""
    kept = list(samples)
    return svg_chart(
        [(s.at, s.lag) for s in kept], title="consumer lag", unit="events", css_class="lag"
    ) + svg_chart(
        [(s.at, s.throughput) for s in kept],
        title="throughput",
        unit="events/s",
        css_class="throughput",
    )
