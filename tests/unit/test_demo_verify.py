"""The demo's verification can fail: each kind of disagreement is reported."""

from __future__ import annotations

from workers.examples.demo.verify import compare_histories

ORDER = ("order", "o1")


def test_matching_histories_have_no_problems() -> None:
    assert (
        compare_histories({ORDER: ["a", "b"]}, {ORDER: [("a", 1), ("b", 2)]}, where="store") == []
    )


def test_a_missing_event_is_reported() -> None:
    [problem] = compare_histories({ORDER: ["a", "b"]}, {ORDER: [("a", 1)]}, where="store")
    assert "lacks 1 accepted" in problem


def test_an_unaccepted_event_is_reported() -> None:
    problems = compare_histories(
        {ORDER: ["a"]}, {ORDER: [("a", 1), ("x", 2)]}, where="topic orders"
    )
    assert problems == ["topic orders: order o1 holds 1 event(s) nobody accepted"]


def test_duplicates_and_gaps_are_reported() -> None:
    problems = compare_histories(
        {ORDER: ["a", "b"]}, {ORDER: [("a", 1), ("a", 1), ("b", 3)]}, where="store"
    )
    assert any("duplicate" in p for p in problems)
    assert any("versions are [1, 1, 3]" in p for p in problems)


def test_an_aggregate_with_nothing_found_is_reported() -> None:
    assert compare_histories({ORDER: ["a"]}, {}, where="store") == [
        "store: order o1 lacks 1 accepted event(s)"
    ]
