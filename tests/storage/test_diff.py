"""JSON Merge Patch: the diff rebuilds the target, and the changed paths are exactly the changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.storage.helpers import canonical
from workers.storage import apply_patch, changed_paths, merge_diff
from workers.storage.diff import same

_ABSENT = object()
_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
_keys = st.text(alphabet="abcd", min_size=1, max_size=2)  # few keys: a and b share many


def _json(allow_null: bool) -> st.SearchStrategy[Any]:
    base = _scalars | st.none() if allow_null else _scalars
    return st.recursive(
        base,
        lambda inner: (
            st.lists(inner | st.none(), max_size=3) | st.dictionaries(_keys, inner, max_size=4)
        ),
        max_leaves=12,
    )


documents = st.dictionaries(_keys, _json(allow_null=False), max_size=5)


@settings(max_examples=250, deadline=None)
@given(documents, documents)
def test_applying_the_diff_to_the_source_gives_the_target(a: Any, b: Any) -> None:
    before = canonical(a)
    patch = merge_diff(a, b)
    assert canonical(apply_patch(patch, a)) == canonical(b)
    assert canonical(a) == before, "diff or apply changed its input"


@settings(max_examples=200, deadline=None)
@given(documents, documents)
def test_changed_paths_are_exactly_where_the_documents_differ(a: Any, b: Any) -> None:
    paths = changed_paths(a, merge_diff(a, b))
    for path in paths:
        assert not _same_at(a, b, path), f"{path} is listed but did not change"
    for leaf in _leaves(a) | _leaves(b):
        if not _same_at(a, b, leaf):  # covered by a listed path above, at or below it
            assert any(_related(leaf, path) for path in paths), leaf


@given(documents)
def test_no_change_is_an_empty_patch(a: Any) -> None:
    assert merge_diff(a, a) == {}
    assert changed_paths(a, {}) == []


@given(documents)
def test_create_and_delete_are_whole_document_patches(a: Any) -> None:
    assert canonical(apply_patch(merge_diff(None, a), None)) == canonical(a)
    assert merge_diff(a, None) is None and apply_patch(None, a) is None
    assert changed_paths(None, a) == sorted(a)
    assert changed_paths(a, None) == sorted(a)


# RFC 7386, Appendix A: (target, patch, result).
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_EXAMPLES)
def test_apply_patch_follows_the_rfc_examples(target: Any, patch: Any, result: Any) -> None:
    assert apply_patch(patch, target) == result


def test_changed_paths_name_nested_fields_and_replaced_subtrees() -> None:
    a = {"stats": {"gold": 1, "xp": 2}, "name": "x", "tags": [1], "gone": True}
    b = {"stats": {"gold": 5, "xp": 2}, "name": {"first": "x"}, "tags": [1, 2], "new": 1}
    patch = merge_diff(a, b)
    assert patch == {
        "stats": {"gold": 5},
        "name": {"first": "x"},
        "tags": [1, 2],
        "gone": None,
        "new": 1,
    }
    assert changed_paths(a, patch) == ["gone", "name", "new", "stats.gold", "tags"]


def test_values_that_python_calls_equal_are_different_json() -> None:
    assert merge_diff({"a": 1}, {"a": True}) == {"a": True}
    assert merge_diff({"a": 1}, {"a": 1.0}) == {"a": 1.0}
    assert merge_diff({"a": 0.0}, {"a": -0.0}) == {"a": -0.0}
    assert same({"a": [1, {"b": "c"}]}, {"a": [1, {"b": "c"}]})
    assert not same([1], [1, 1]) and not same("1", 1) and not same(None, 0)


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _ABSENT
        doc = doc[part]
    return doc


def _same_at(a: Any, b: Any, path: str) -> bool:
    x, y = _get(a, path), _get(b, path)
    return x is y if _ABSENT in (x, y) else same(x, y)


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def _leaves(doc: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out
