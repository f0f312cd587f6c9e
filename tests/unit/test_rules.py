"""Snapshot rules: evaluation tables, combination with ``|``, and monotonicity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.rules import (
    AnyOf,
    Every,
    Interval,
    On,
    Progress,
    Rule,
    every,
    interval,
    never,
    on,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _progress(
    version: int,
    event_type: str = "Changed",
    *,
    snapshot_version: int = 0,
    after_s: float = 0.0,
    snapshot_taken_at: datetime | None = None,
) -> Progress:
    return Progress(
        version=version,
        event_type=event_type,
        occurred_at=T0 + timedelta(seconds=after_s),
        snapshot_version=snapshot_version,
        snapshot_taken_at=snapshot_taken_at,
    )


@pytest.mark.parametrize(
    ("n", "version", "snapshot_version", "expected"),
    [
        (1, 1, 0, True),
        (1, 5, 5, False),
        (1, 6, 5, True),
        (3, 1, 0, False),
        (3, 2, 0, False),
        (3, 3, 0, True),
        (3, 4, 0, True),  # a missed trigger is caught up by the next event
        (3, 5, 3, False),
        (3, 6, 3, True),
        (50, 49, 0, False),
        (50, 50, 0, True),
        (50, 149, 100, False),
        (50, 150, 100, True),
    ],
)
def test_every(n: int, version: int, snapshot_version: int, expected: bool) -> None:
    progress = _progress(version, snapshot_version=snapshot_version)
    assert progress.events_since_snapshot == version - snapshot_version
    assert every(n).should_snapshot(progress) is expected


@pytest.mark.parametrize(
    ("types", "event_type", "version", "snapshot_version", "expected"),
    [
        ({"Closed"}, "Closed", 1, 0, True),
        ({"Closed"}, "Opened", 1, 0, False),
        ({"Closed", "Cancelled"}, "Cancelled", 9, 4, True),
        ({"Closed"}, "Closed", 4, 4, False),  # that event is already in the snapshot
        (set(), "Closed", 1, 0, False),
        ("Closed", "Closed", 2, 0, True),  # a single name, not its letters
        ("Closed", "C", 2, 0, False),
    ],
)
def test_on(
    types: set[str] | str, event_type: str, version: int, snapshot_version: int, expected: bool
) -> None:
    progress = _progress(version, event_type, snapshot_version=snapshot_version)
    assert on(types).should_snapshot(progress) is expected


@pytest.mark.parametrize(
    ("seconds", "after_s", "version", "snapshot_version", "taken", "expected"),
    [
        (60, 0, 1, 0, None, True),  # no snapshot yet: the first event takes one
        (60, 0, 3, 3, None, False),  # nothing new since the snapshot
        (60, 59.999, 4, 3, T0, False),
        (60, 60, 4, 3, T0, True),
        (60, 3600, 4, 3, T0, True),
        (60, 3600, 3, 3, T0, False),
        (0.5, 1, 2, 1, T0, True),
        (60, -5, 4, 3, T0, False),  # an event dated before the snapshot (clock skew)
    ],
)
def test_interval(
    seconds: float,
    after_s: float,
    version: int,
    snapshot_version: int,
    taken: datetime | None,
    expected: bool,
) -> None:
    progress = _progress(
        version, snapshot_version=snapshot_version, after_s=after_s, snapshot_taken_at=taken
    )
    assert interval(seconds).should_snapshot(progress) is expected


ORDERISH = every(50) | on({"Delivered", "Cancelled"})


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (_progress(1, "Placed"), False),
        (_progress(50, "Paid"), True),
        (_progress(3, "Delivered"), True),
        (_progress(3, "Cancelled", snapshot_version=3), False),
        (_progress(60, "Shipped", snapshot_version=50), False),
        (_progress(100, "Shipped", snapshot_version=50), True),
    ],
)
def test_every_or_on(progress: Progress, expected: bool) -> None:
    assert ORDERISH.should_snapshot(progress) is expected


def test_any_of_fires_when_any_part_fires() -> None:
    rule = every(10) | interval(30) | on("Closed")
    assert (
        rule.should_snapshot(_progress(3, snapshot_version=2, after_s=5, snapshot_taken_at=T0))
        is False
    )
    assert rule.should_snapshot(_progress(12, snapshot_version=2, after_s=5, snapshot_taken_at=T0))
    assert rule.should_snapshot(_progress(3, snapshot_version=2, after_s=31, snapshot_taken_at=T0))
    assert rule.should_snapshot(
        _progress(3, "Closed", snapshot_version=2, after_s=5, snapshot_taken_at=T0)
    )


def test_combinations_flatten_into_one_any_of() -> None:
    a, b, c, d = every(5), on("X"), interval(10), every(7)
    left = (a | b) | c
    right = a | (b | c)
    assert left == right == AnyOf((a, b, c))
    assert (a | b) | (c | d) == AnyOf((a, b, c, d))
    nested = a | (b | (c | d))
    assert isinstance(nested, AnyOf)
    assert not any(isinstance(part, AnyOf) for part in nested.rules)


def test_never_never_fires() -> None:
    rule = never()
    for version in (1, 50, 10_000):
        assert rule.should_snapshot(_progress(version, "Closed")) is False
    assert (never() | every(2)).should_snapshot(_progress(2)) is True


def test_constructors_build_the_declared_values() -> None:
    assert every(3) == Every(3)
    assert on(["A", "B", "A"]) == On(frozenset({"A", "B"}))
    assert interval(2.5) == Interval(2.5)


@pytest.mark.parametrize("n", [0, -1, -50])
def test_every_needs_a_positive_count(n: int) -> None:
    with pytest.raises(ValueError, match="every"):
        every(n)


@pytest.mark.parametrize("seconds", [0, 0.0, -1, -0.001])
def test_interval_needs_a_positive_duration(seconds: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        interval(seconds)


def test_the_base_rule_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Rule().should_snapshot(_progress(1))


# --- properties ----------------------------------------------------------------------

_types = st.sampled_from(["A", "B", "C", "Closed"])
_leaf_rules: st.SearchStrategy[Rule] = st.one_of(
    st.integers(min_value=1, max_value=100).map(every),
    st.sets(_types, max_size=3).map(on),
    st.floats(min_value=0.001, max_value=1e6).map(interval),
    st.just(never()),
)
_rules = st.lists(_leaf_rules, min_size=1, max_size=4).map(
    lambda parts: parts[0] if len(parts) == 1 else _combine(parts)
)


def _combine(parts: list[Rule]) -> Rule:
    combined = parts[0]
    for part in parts[1:]:
        combined = combined | part
    return combined


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=200),
    snapshot_version=st.integers(min_value=0, max_value=10_000),
    since=st.integers(min_value=0, max_value=500),
)
def test_every_is_monotone_in_events_since_snapshot(
    n: int, snapshot_version: int, since: int
) -> None:
    rule = every(n)
    here = _progress(snapshot_version + since, snapshot_version=snapshot_version)
    next_one = _progress(snapshot_version + since + 1, snapshot_version=snapshot_version)
    if rule.should_snapshot(here):
        assert rule.should_snapshot(next_one)
    assert rule.should_snapshot(here) is (since >= n)


@settings(max_examples=200, deadline=None)
@given(
    rule=_rules,
    version=st.integers(min_value=1, max_value=10_000),
    event_type=_types,
    after_s=st.floats(min_value=-1e6, max_value=1e7),
    has_snapshot_time=st.booleans(),
)
def test_no_rule_fires_without_new_events(
    rule: Rule, version: int, event_type: str, after_s: float, has_snapshot_time: bool
) -> None:
    progress = _progress(
        version,
        event_type,
        snapshot_version=version,
        after_s=after_s,
        snapshot_taken_at=T0 if has_snapshot_time else None,
    )
    assert progress.events_since_snapshot == 0
    assert rule.should_snapshot(progress) is False


@settings(max_examples=100, deadline=None)
@given(first=_rules, second=_rules, version=st.integers(1, 300), event_type=_types)
def test_or_fires_exactly_when_either_part_fires(
    first: Rule, second: Rule, version: int, event_type: str
) -> None:
    progress = _progress(version, event_type, after_s=42, snapshot_taken_at=T0)
    expected = first.should_snapshot(progress) or second.should_snapshot(progress)
    assert (first | second).should_snapshot(progress) is expected
    assert (second | first).should_snapshot(progress) is expected


def test_interval_rejects_nan() -> None:
    # interval(nan) passes ``seconds <= 0`` yet never fires once a snapshot exists
    # (``elapsed >= nan`` is always False): a silently disabled rule.
    with pytest.raises(ValueError, match="interval"):
        interval(float("nan"))
