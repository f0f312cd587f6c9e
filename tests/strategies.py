"""Hypothesis strategies from a domain's declarations: data a schema accepts, valid histories."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from snapshot_rules.domain import ANY, NEW, Domain, Mode
from snapshot_rules.schema import Choice, Kind, ListOf, Number, Obj, Optional, Text
from topics.envelope import Event, new_event
from topics.errors import TransitionRejected
from workers.cqrs.aggregate import AggregateRoot

_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def data_for(kind: Kind) -> st.SearchStrategy[Any]:
    """Values ``kind`` accepts (small ones: Hypothesis shrinks from there)."""
    if isinstance(kind, Obj):
        required = {k: data_for(v) for k, v in kind.fields.items() if not isinstance(v, Optional)}
        optional = {k: data_for(v.kind) for k, v in kind.fields.items() if isinstance(v, Optional)}
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(kind, Text):
        return st.text(_TEXT, min_size=1, max_size=min(kind.max_length, 12))
    if isinstance(kind, Choice):
        return st.sampled_from(kind.options)
    if isinstance(kind, ListOf):
        return st.lists(data_for(kind.item), min_size=kind.min_items,
                        max_size=max(kind.min_items, min(kind.max_items, 3)))  # fmt: skip
    if isinstance(kind, Number):
        return _number(kind)
    raise TypeError(f"no strategy for {kind!r}")


def _number(kind: Number) -> st.SearchStrategy[Any]:
    low = kind.minimum if kind.minimum is not None else -(2**40)
    high = kind.maximum if kind.maximum is not None else 2**40
    if kind.integer:
        low = max(math.ceil(low), 1 if kind.positive else math.ceil(low))
        return st.integers(min_value=low, max_value=math.floor(high))
    floats = st.floats(min_value=max(low, 0.0) if kind.positive else low, max_value=high,
                       allow_nan=False, allow_infinity=False, exclude_min=kind.positive)  # fmt: skip
    return st.integers(min_value=max(math.ceil(low), 1 if kind.positive else math.ceil(low)),
                       max_value=math.floor(high)) | floats  # fmt: skip


@st.composite
def history(draw: st.DrawFn, domain: Domain, *, max_size: int = 6) -> list[Event]:
    """A valid stored history of one aggregate: each event fits its predecessor and its state."""
    if domain.mode is Mode.SYNC:
        return _sync_history(draw, domain, max_size)
    events: list[Event] = []
    for version in range(1, draw(st.integers(0, max_size)) + 1):
        current = events[-1].type if events else NEW
        fitting = sorted(
            n for n, s in domain.events.items() if ANY in s.after or current in s.after
        )
        if not fitting:
            break
        kind = draw(st.sampled_from(fitting))
        data = draw(data_for(domain.spec(kind).schema))
        events.append(new_event(domain.name, "a-1", kind, data, version=version,
                                schema_version=domain.schema_version(kind)))  # fmt: skip
    return events


def _sync_history(draw: st.DrawFn, domain: Domain, max_size: int) -> list[Event]:
    root = AggregateRoot(domain, "a-1")
    for _ in range(draw(st.integers(0, max_size))):
        kind = draw(st.sampled_from(sorted(domain.events)))
        try:
            root.record(kind, draw(data_for(domain.spec(kind).schema)))
        except TransitionRejected:
            continue  # the rules refuse it here: the history goes on without it
    return list(root.changes)
