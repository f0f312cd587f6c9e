"""JSON Merge Patch (RFC 7386): the diff between two documents, its application, changed paths.

A merge patch cannot say "set this field to null" (null means "remove"), so documents
kept by the storage never hold null inside an object; nulls inside arrays are fine,
because a patch replaces an array whole.
"""

from __future__ import annotations

import math

from topics.jsonvalue import Json


def merge_diff(before: Json, after: Json) -> Json:
    """The merge patch that turns ``before`` into ``after`` (``{}`` when they are the same)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return _copy(after)
    patch: dict[str, Json] = {key: None for key in before if key not in after}
    for key, value in after.items():
        if key not in before:
            patch[key] = _copy(value)
        elif not same(before[key], value):
            old = before[key]
            # Two objects merge key by key; anything else is replaced whole.
            both = isinstance(old, dict) and isinstance(value, dict)
            patch[key] = merge_diff(old, value) if both else _copy(value)
    return patch


def apply_patch(patch: Json, target: Json) -> Json:
    """Apply a merge patch to ``target`` without changing it (RFC 7386, section 2)."""
    if not isinstance(patch, dict):
        return _copy(patch)
    result: dict[str, Json] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_patch(value, result.get(key))
    return result


def changed_paths(before: Json, patch: Json) -> list[str]:
    """Dotted paths a patch sets or removes, sorted; a replaced subtree counts as one path.

    A patch that creates or deletes the whole document (``before`` or the patch is not
    an object) names the top-level fields it creates or removes.
    """
    if not isinstance(patch, dict):
        return sorted(before) if isinstance(before, dict) else []
    paths: list[str] = []
    _walk(patch, before if isinstance(before, dict) else {}, "", paths)
    return sorted(paths)


def _walk(patch: dict[str, Json], before: dict[str, Json], prefix: str, out: list[str]) -> None:
    for key, value in patch.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and value:
            _walk(value, old, f"{prefix}{key}.", out)
        else:
            out.append(f"{prefix}{key}")


def same(a: Json, b: Json) -> bool:
    """JSON equality that tells ``true`` from ``1``, ``1`` from ``1.0`` and ``0.0`` from
    ``-0.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a is None and b is None


def _copy(value: Json) -> Json:
    """A deep copy of JSON containers, so a patch never aliases the document it came from."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
