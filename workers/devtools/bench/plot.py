"""A small SVG plot of the scale-out run: rate and CPU per event against processes.

Plain SVG written by hand: no plotting library for three points.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from html import escape
from pathlib import Path

from topics.errors import ConfigError

W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 360, 70, 70, 40, 50


def plot_target(plot: str) -> Path:
    """``--plot`` as an absolute path, checked before anything runs: a relative path is resolved
    from where the command started, and a directory that is missing or not writable is said at
    once (not at the end of a long run, losing the rows after it)."""
    path = Path(plot).expanduser().resolve()
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(
            f"--plot {plot}: the folder {folder} does not exist; create it or "
            "name a file in an existing folder."
        )
    if path.is_dir():
        raise ConfigError(f"--plot {plot}: {path} is a folder; name the SVG file to write.")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(
            f"--plot {plot}: {path} cannot be written here; name a file in a "
            "folder you may write to."
        )
    return path


def scale_svg(points: Sequence[tuple[int, float, float]], title: str) -> str:
    """``points``: (processes, events/s, CPU ms per event), in order of processes."""
    if not points:
        raise ValueError("a plot needs at least one measured point")
    xs = [p for p, _, _ in points]
    rate_top = _nice(max(r for _, r, _ in points))
    cpu_top = _nice(max(c for _, _, c in points))
    x_lo, x_hi = min(xs), max(xs)
    span = (x_hi - x_lo) or 1

    def x(p: float) -> float:
        return LEFT + (p - x_lo) / span * (W - LEFT - RIGHT)

    def y(v: float, top: float) -> float:
        return H - BOTTOM - v / top * (H - TOP - BOTTOM)

    rate_line = " ".join(f"{x(p):.1f},{y(r, rate_top):.1f}" for p, r, _ in points)
    cpu_line = " ".join(f"{x(p):.1f},{y(c, cpu_top):.1f}" for p, _, c in points)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#1f77b4"/>',
        f'<line x1="{W - RIGHT}" y1="{TOP}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#d62728"/>',
        f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">appender processes</text>',
        f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle" '
        f'fill="#1f77b4">events/s</text>',
        f'<text x="{W - 14}" y="{H / 2}" transform="rotate(90 {W - 14} {H / 2})" '
        f'text-anchor="middle" fill="#d62728">CPU ms per event</text>',
    ]
    for i in range(5):
        frac = i / 4
        yy = H - BOTTOM - frac * (H - TOP - BOTTOM)
        parts.append(
            f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{W - RIGHT}" y2="{yy:.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#1f77b4">'
            f"{rate_top * frac:,.0f}</text>"
        )
        parts.append(
            f'<text x="{W - RIGHT + 6}" y="{yy + 4:.1f}" fill="#d62728">{cpu_top * frac:.2f}</text>'
        )
    for p in xs:
        parts.append(f'<text x="{x(p):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{p}</text>')
    parts.append(f'<polyline points="{rate_line}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    parts.append(
        f'<polyline points="{cpu_line}" fill="none" stroke="#d62728" stroke-width="2" '
        'stroke-dasharray="6 4"/>'
    )
    for p, r, c in points:
        parts.append(f'<circle cx="{x(p):.1f}" cy="{y(r, rate_top):.1f}" r="4" fill="#1f77b4"/>')
        parts.append(f'<circle cx="{x(p):.1f}" cy="{y(c, cpu_top):.1f}" r="4" fill="#d62728"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _nice(value: float) -> float:
    """A round axis top at or above ``value``."""
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    while step / 10 >= 0.01 and value / step < 4:
        step /= 2
    top = step
    while top < value:
        top += step
    return top
