"""Measuring for the benchmarks: rates, latency percentiles, CPU time of a process, ratio tables.

A row holds every interleaved round of both sides; it prints the median round of each and the
ratios of the rounds paired as they ran (min / median / max), so a spread is never hidden.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc), children not included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def load_average() -> str:
    """The machine's 1/5/15-minute load, printed beside figures measured on a shared machine."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


@dataclass(frozen=True, slots=True)
class Measured:
    """One measurement: work done, wall time, latencies (ms) and the measured CPU seconds."""

    name: str
    count: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_s: float | None = None
    note: str = ""
    """What else the run saw, printed after the name (the scale rows: join → shared)."""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_item_ms(self) -> float | None:
        return None if self.cpu_s is None or not self.count else self.cpu_s / self.count * 1000


async def timed(
    name: str, count: int, work: Callable[[], Awaitable[object]], *, store_pid: int | None = None
) -> Measured:
    """``work`` run once in this process: its wall time and CPU, the store's CPU included when
    the bench started the store (``store_pid``): work the store does is not cheaper for being
    done elsewhere."""

    def cpu_now() -> float:
        return time.process_time() + (cpu_seconds(store_pid) if store_pid else 0.0)

    cpu, started = cpu_now(), time.perf_counter()
    await work()
    return Measured(name, count, time.perf_counter() - started, cpu_s=cpu_now() - cpu)


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


@dataclass(frozen=True, slots=True)
class Spread:
    """Min, median and max of one ratio over the rounds."""

    low: float
    mid: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        if not values:
            return None
        ordered = sorted(values)
        return cls(ordered[0], statistics.median(ordered), ordered[-1])

    def __str__(self) -> str:
        if len({round(v, 2) for v in (self.low, self.mid, self.high)}) == 1:
            return f"{self.mid:.2f}x"
        return f"{self.low:.2f}/{self.mid:.2f}/{self.high:.2f}x"

    def as_dict(self) -> dict[str, float]:
        return {"min": round(self.low, 3), "median": round(self.mid, 3), "max": round(self.high, 3)}


@dataclass(frozen=True, slots=True)
class Target:
    """What a row must show against its baseline, judged on the median of its paired ratios;
    a row with only a ``note`` (a reference figure) has no verdict."""

    rate_at_least: float | None = None
    cpu_at_most: float | None = None
    p99_at_most: float | None = None
    note: str = ""

    def __str__(self) -> str:
        parts = []
        if self.rate_at_least is not None:
            parts.append(f"rate >= {self.rate_at_least:g}x")
        if self.cpu_at_most is not None:
            parts.append(f"cpu <= {self.cpu_at_most:g}x")
        if self.p99_at_most is not None:
            parts.append(f"p99 <= {self.p99_at_most:g}x")
        return ", ".join(parts) or self.note

    @property
    def judged(self) -> bool:
        return (self.rate_at_least, self.cpu_at_most, self.p99_at_most) != (None, None, None)


@dataclass(frozen=True, slots=True)
class Row:
    """Every round of one row: ours and, paired round by round, the baseline's."""

    ours: tuple[Measured, ...]
    theirs: tuple[Measured, ...]
    target: Target

    @property
    def met(self) -> bool | None:
        """Whether the median ratios meet the target; None without a target or a ratio."""
        if not self.target.judged:
            return None
        checks = (  # (wanted, measured, whether more is better)
            (self.target.rate_at_least, self.rate_ratio, True),
            (self.target.cpu_at_most, self.cpu_ratio, False),
            (self.target.p99_at_most, self.p99_ratio, False),
        )
        verdict = True
        for wanted, spread, more_is_better in checks:
            if wanted is None:
                continue
            if spread is None:
                return None  # nothing measured to judge by
            holds = spread.mid >= wanted if more_is_better else spread.mid <= wanted
            verdict = verdict and holds
        return verdict

    @property
    def median_cpu_ms(self) -> float | None:
        """CPU per item of our median round."""
        return median(self.ours).cpu_per_item_ms if self.ours else None

    @property
    def rate_ratio(self) -> Spread | None:
        return Spread.of(
            [o.rate / t.rate for o, t in zip(self.ours, self.theirs, strict=False) if t.rate]
        )

    @property
    def cpu_ratio(self) -> Spread | None:
        pairs = zip(self.ours, self.theirs, strict=False)
        return Spread.of(
            [
                o.cpu_per_item_ms / t.cpu_per_item_ms
                for o, t in pairs
                if o.cpu_per_item_ms and t.cpu_per_item_ms
            ]
        )

    @property
    def p99_ratio(self) -> Spread | None:
        pairs = zip(self.ours, self.theirs, strict=False)
        return Spread.of([o.p99_ms / t.p99_ms for o, t in pairs if o.p99_ms and t.p99_ms])


def _rounds(m: Measured | Sequence[Measured] | None) -> tuple[Measured, ...]:
    if m is None:
        return ()
    return (m,) if isinstance(m, Measured) else tuple(m)


@dataclass(slots=True)
class Table:
    """Rows of (ours, baseline) printed with their ratios, over one or more rounds."""

    title: str
    rows: list[Row] = field(default_factory=list)

    def add(
        self,
        ours: Measured | Sequence[Measured],
        baseline: Measured | Sequence[Measured] | None = None,
        target: Target | str = "",
    ) -> None:
        judged = target if isinstance(target, Target) else Target(note=target)
        self.rows.append(Row(_rounds(ours), _rounds(baseline), judged))

    def render(self) -> str:
        """The table, every cell whole: each column is as wide as its widest cell, and two
        spaces part the columns, so a long name or a large figure never runs into the next
        one. Each judged row ends with its target and whether it is met."""
        header = ("  row", "rate", "p50", "p99", "cpu/item", "rate x (min/med/max)", "cpu x")
        lines: list[tuple[tuple[str, ...], str]] = [(header, "target")]
        for row in self.rows:
            lines.append((_cells(median(row.ours), row, "  "), _verdict(row)))
            if row.theirs:
                lines.append((_cells(median(row.theirs), None, "    baseline: "), ""))
        texts = aligned([cells for cells, _ in lines])
        out = [f"{text}  {target}".rstrip() for text, (_, target) in zip(texts, lines, strict=True)]
        return "\n".join([self.title, *out])

    def as_dicts(self) -> list[dict[str, object]]:
        out = []
        for row in self.rows:
            ours = median(row.ours)
            baseline = median(row.theirs) if row.theirs else None
            rate_x, cpu_x, p99_x = row.rate_ratio, row.cpu_ratio, row.p99_ratio
            out.append(
                {
                    "row": ours.name,
                    "note": ours.note,
                    "rounds": len(row.ours),
                    "rate": round(ours.rate, 1),
                    "p50_ms": ours.p50_ms,
                    "p99_ms": ours.p99_ms,
                    "cpu_per_item_ms": ours.cpu_per_item_ms,
                    "baseline": baseline.name if baseline else None,
                    "baseline_rate": round(baseline.rate, 1) if baseline else None,
                    "baseline_p99_ms": baseline.p99_ms if baseline else None,
                    "baseline_cpu_per_item_ms": baseline.cpu_per_item_ms if baseline else None,
                    "ratio": rate_x.as_dict() if rate_x else None,
                    "cpu_ratio": cpu_x.as_dict() if cpu_x else None,
                    "p99_ratio": p99_x.as_dict() if p99_x else None,
                    "target": str(row.target),
                    "target_met": row.met,
                }
            )
        return out


def aligned(lines: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as text: each column as wide as its widest cell, two spaces between
    columns, the first column left-aligned and the others right-aligned."""
    widths = [max(len(cells[i]) for cells in lines) for i in range(len(lines[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        for cells in lines
    ]


def _verdict(row: Row) -> str:
    met = row.met
    if met is None:
        return str(row.target)
    return f"{row.target}: {'met' if met else 'NOT met'}"


def _cells(m: Measured, row: Row | None, indent: str) -> tuple[str, ...]:
    """One side's cells: name, rate, p50, p99, CPU per item, and (ours only) the ratios."""
    rate_x = row.rate_ratio if row else None
    cpu_x = row.cpu_ratio if row else None
    return (
        indent + m.name + (f" ({m.note})" if m.note else ""),
        f"{m.rate:,.0f}/s",
        f"{m.p50_ms:.2f}ms" if m.p50_ms is not None else "",
        f"{m.p99_ms:.2f}ms" if m.p99_ms is not None else "",
        f"{m.cpu_per_item_ms:.3f}ms" if m.cpu_per_item_ms is not None else "",
        str(rate_x) if rate_x else "",
        str(cpu_x) if cpu_x else "",
    )
