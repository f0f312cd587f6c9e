"""The console's state diff: every differing leaf, by path, with what it was and became."""

from __future__ import annotations

from workers.http.console.browse import diff


def test_nested_changes_additions_and_removals_are_named_by_path() -> None:
    before = {"status": "placed", "items": [{"sku": "a"}, {"sku": "b"}], "note": "x", "n": 1}
    after = {"status": "paid", "items": [{"sku": "a"}], "paid": 5.0, "n": 1}
    assert diff(before, after) == [
        ("$.items[1].sku", "removed", "b", None),
        ("$.note", "removed", "x", None),
        ("$.paid", "added", None, 5.0),
        ("$.status", "changed", "placed", "paid"),
    ]
    assert diff(after, after) == []
    assert diff(None, {"a": 1}) == [("$", "removed", None, None), ("$.a", "added", None, 1)]
