"""The ladder's thinning: O(log n) rungs, dense near the head, a past point near a rung."""

from __future__ import annotations

import bisect
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.ladder import RUNGS_PER_OCTAVE, kept_rungs

STEP = 1000


def climbed(gaps: list[int], *, step: int = STEP) -> list[list[int]]:
    """The ladder after each new rung, rungs at least ``step`` apart (as the loader keeps them)."""
    rungs: list[int] = []
    history = []
    version = 100
    for gap in gaps:
        rungs = kept_rungs([*rungs, version], step=step)
        history.append(rungs)
        version += step + gap
    return history


def test_evenly_climbed_ladder_keeps_every_rung_near_the_head_and_few_far_back() -> None:
    (*_, last) = climbed([0] * 4096)
    head = last[-1]
    assert last[-RUNGS_PER_OCTAVE:] == [head - i * STEP for i in range(RUNGS_PER_OCTAVE)][::-1]
    assert len(last) <= RUNGS_PER_OCTAVE * (4096).bit_length()  # 4 a doubling, not 4096
    assert last[0] == 100  # the first rung stays: the oldest of the oldest slot


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 0, 1, 999, 1500, 3000]), min_size=1, max_size=600))
def test_rungs_stay_logarithmic_and_a_past_point_replays_within_half_its_distance(
    gaps: list[int],
) -> None:
    history = climbed(gaps)
    for before, after in itertools.pairwise(history):
        assert set(after) - set(before) == {after[-1]}  # a dropped rung never comes back
    rungs = history[-1]
    head = rungs[-1]
    assert len(rungs) <= RUNGS_PER_OCTAVE * ((head // STEP).bit_length() + 2)
    for target in range(rungs[0], head + 1, 61):
        below = rungs[bisect.bisect_right(rungs, target) - 1]
        distance = head - target
        assert target - below <= 5 * STEP + distance // 2, (target, below, head)


def test_empty_and_bad_arguments() -> None:
    assert kept_rungs([], step=STEP) == []
    assert kept_rungs([7], step=STEP) == [7]
    with pytest.raises(ValueError, match="power of two"):
        kept_rungs([1], step=STEP, per_octave=3)
    with pytest.raises(ValueError, match="positive"):
        kept_rungs([1], step=0)
