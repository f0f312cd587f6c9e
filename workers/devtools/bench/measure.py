"""Measuring for the benchmarks: rates, latency percentiles, CPU time of a process, ratio tables."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc), children not included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


@dataclass(frozen=True, slots=True)
class Measured:
    """One measurement: work done, wall time, latencies (ms) and the server's CPU seconds."""

    name: str
    count: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_s: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_item_ms(self) -> float | None:
        return None if self.cpu_s is None or not self.count else self.cpu_s / self.count * 1000


def latencies_ms(samples_s: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    if len(samples_s) < 2:
        only = samples_s[0] * 1000 if samples_s else 0.0
        return only, only
    cuts = statistics.quantiles(samples_s, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def median(runs: Sequence[Measured]) -> Measured:
    """The run with the median rate (interleaved repetitions of one row)."""
    ordered = sorted(runs, key=lambda m: m.rate)
    return ordered[len(ordered) // 2]


@dataclass(slots=True)
class Table:
    """Rows of (ours, baseline) printed with their ratios."""

    title: str
    rows: list[tuple[Measured, Measured | None, str]] = field(default_factory=list)

    def add(self, ours: Measured, baseline: Measured | None = None, target: str = "") -> None:
        self.rows.append((ours, baseline, target))

    def render(self) -> str:
        lines = [self.title]
        header = (
            f"  {'row':<52}{'rate':>11}{'p50':>9}{'p99':>9}{'cpu/item':>10}{'ratio':>8}  target"
        )
        lines.append(header)
        for ours, baseline, target in self.rows:
            lines.append(_line(ours, baseline, target))
            if baseline is not None:
                lines.append(_line(baseline, None, "", indent="    baseline: "))
        return "\n".join(lines)

    def as_dicts(self) -> list[dict[str, object]]:
        out = []
        for ours, baseline, target in self.rows:
            out.append({
                "row": ours.name, "rate": round(ours.rate, 1), "p50_ms": ours.p50_ms,
                "p99_ms": ours.p99_ms, "cpu_per_item_ms": ours.cpu_per_item_ms,
                "baseline": baseline.name if baseline else None,
                "baseline_rate": round(baseline.rate, 1) if baseline else None,
                "baseline_p99_ms": baseline.p99_ms if baseline else None,
                "baseline_cpu_per_item_ms": baseline.cpu_per_item_ms if baseline else None,
                "ratio": round(ours.rate / baseline.rate, 3) if baseline and baseline.rate else None,
                "cpu_ratio": round(ours.cpu_per_item_ms / baseline.cpu_per_item_ms, 3)
                if baseline and ours.cpu_per_item_ms and baseline.cpu_per_item_ms else None,
                "target": target,
            })  # fmt: skip
        return out


def _line(m: Measured, baseline: Measured | None, target: str, *, indent: str = "  ") -> str:
    p50 = f"{m.p50_ms:7.2f}ms" if m.p50_ms is not None else " " * 9
    p99 = f"{m.p99_ms:7.2f}ms" if m.p99_ms is not None else " " * 9
    cpu = f"{m.cpu_per_item_ms:8.3f}ms" if m.cpu_per_item_ms is not None else " " * 10
    ratio = f"{m.rate / baseline.rate:7.2f}x" if baseline and baseline.rate else " " * 8
    cpu_x = " " * 7
    if baseline and m.cpu_per_item_ms and baseline.cpu_per_item_ms:
        cpu_x = f"{m.cpu_per_item_ms / baseline.cpu_per_item_ms:6.2f}x"
    name = (indent + m.name)[:54]
    return f"{name:<54}{m.rate:>9,.0f}/s{p50}{p99}{cpu}{ratio}{cpu_x}  {target}".rstrip()
