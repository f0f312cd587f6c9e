"""Which rungs of a snapshot ladder to keep: dense near the head, sparser further back.

Rungs are counted in steps (``version // step``). A rung ``d`` steps behind the head lies in
octave ``⌊log2 d⌋``; within it rungs are kept ``RUNGS_PER_OCTAVE`` to the octave, so ``2^L``
steps apart with ``L = max(0, ⌊log2 d⌋ - log2 RUNGS_PER_OCTAVE)``: of the rungs sharing a
``2^L``-step slot, the oldest stays. As the head moves a rung's level only rises and slots only
merge, so a rung once dropped is never wanted again, and an aggregate ``n`` versions long keeps
about ``RUNGS_PER_OCTAVE * log2(n / step)`` rungs. A point ``d`` steps behind the head replays
at most about ``step * (1 + 2d / RUNGS_PER_OCTAVE)`` events from the rung below it.
"""

from __future__ import annotations

from collections.abc import Iterable

RUNGS_PER_OCTAVE = 4
"""Rungs kept per doubling of the distance from the head (a power of two)."""


def kept_rungs(
    versions: Iterable[int], *, step: int, per_octave: int = RUNGS_PER_OCTAVE
) -> list[int]:
    """The versions of the rungs to keep (ascending); the newest is always kept."""
    if step < 1 or per_octave < 1 or per_octave & (per_octave - 1):
        raise ValueError(f"step {step} must be positive, per_octave {per_octave} a power of two")
    ordered = sorted(set(versions))
    if not ordered:
        return []
    head = ordered[-1] // step
    dense = per_octave.bit_length() - 1
    kept: dict[tuple[int, int], int] = {}
    for version in ordered:  # ascending: the first rung of a slot is its oldest
        bucket = version // step
        level = max(0, (head - bucket).bit_length() - 1 - dense)
        kept.setdefault((level, bucket >> level), version)
    return sorted(kept.values())
