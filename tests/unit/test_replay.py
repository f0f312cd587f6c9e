"""Replay: from any snapshot equals from scratch, deterministic, and strict about versions."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.replay import Folded, ReplayGap, State, replay
from topics.envelope import Event, new_event
from topics.errors import TransitionRejected
from workers.examples.domains.order import ORDER

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=16)
_price = st.integers(min_value=0, max_value=10**6) | st.floats(
    min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False
)
_item = st.fixed_dictionaries(
    {"sku": _text.map(lambda s: s[:64]), "qty": st.integers(1, 1000), "price": _price}
)
DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "OrderPlaced": st.fixed_dictionaries({"items": st.lists(_item, min_size=1, max_size=5)}),
    "OrderPaid": st.fixed_dictionaries(
        {"amount": st.integers(1, 10**6) | st.floats(min_value=0.01, max_value=1e6)}
    ),
    "OrderShipped": st.fixed_dictionaries({"carrier": _text}),
    "OrderDelivered": st.just({}),
    "OrderCancelled": st.fixed_dictionaries({"reason": _text}),
}


def _successors(current: str | None) -> list[str]:
    """The event types the domain allows next, asked of the domain itself."""
    allowed = []
    for kind in sorted(ORDER.events):
        try:
            ORDER.check_transition("o", current, kind)
        except TransitionRejected:
            continue
        allowed.append(kind)
    return allowed


@st.composite
def order_histories(draw: st.DrawFn) -> list[Event]:
    """A valid lifecycle of one order, stopping anywhere (at least one event)."""
    aggregate_id = draw(st.from_regex(r"\A[a-z0-9]{1,12}\Z"))
    events: list[Event] = []
    current: str | None = None
    while True:
        choices = _successors(current)
        if not choices or (events and draw(st.booleans())):
            return events
        kind = draw(st.sampled_from(choices))
        data = draw(DATA[kind])
        ORDER.check_data(kind, data)  # the generator itself only makes valid events
        events.append(new_event("order", aggregate_id, kind, data, version=len(events) + 1))
        current = kind


@settings(max_examples=200, deadline=None)
@given(history=order_histories(), split=st.data())
def test_replay_from_any_snapshot_equals_replay_from_scratch(
    history: list[Event], split: st.DataObject
) -> None:
    k = split.draw(st.integers(min_value=0, max_value=len(history)), label="k")
    scratch = replay(ORDER.reducer, history)
    snapshot = replay(ORDER.reducer, history[:k])
    assert snapshot.version == k
    resumed = replay(ORDER.reducer, history[k:], start=snapshot)
    assert resumed == scratch
    assert scratch.version == len(history)
    assert scratch.state is not None
    assert scratch.state["status"] in {"placed", "paid", "shipped", "delivered", "cancelled"}


@settings(max_examples=100, deadline=None)
@given(history=order_histories())
def test_replay_is_deterministic_and_leaves_its_input_alone(history: list[Event]) -> None:
    before = copy.deepcopy([event.as_dict() for event in history])
    first = replay(ORDER.reducer, history)
    assert first.state is not None
    # Mutating a result must not leak into the events or into a later replay.
    first.state.setdefault("items", []).append({"sku": "injected"})
    second = replay(ORDER.reducer, history)
    third = replay(ORDER.reducer, iter(history))  # any iterable, read once
    assert second == third
    assert second.state is not None
    assert {"sku": "injected"} not in second.state.get("items", [])
    assert [event.as_dict() for event in history] == before


def _counting(state: State | None, event: Event) -> State:
    """A reducer whose state records every event it saw, in order."""
    seen = list((state or {}).get("seen", []))
    return {"seen": [*seen, (event.version, event.data["n"])]}


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.integers(-1000, 1000), min_size=0, max_size=60),
    split=st.data(),
)
def test_long_histories_fold_every_event_once_in_order(
    values: list[int], split: st.DataObject
) -> None:
    history = [
        new_event("order", "o", "Counted", {"n": n}, version=i) for i, n in enumerate(values, 1)
    ]
    k = split.draw(st.integers(min_value=0, max_value=len(history)), label="k")
    scratch = replay(_counting, history)
    resumed = replay(_counting, history[k:], start=replay(_counting, history[:k]))
    assert resumed == scratch
    expected = list(enumerate(values, 1))
    assert scratch == Folded({"seen": expected} if values else None, len(values))


def _numbered(*versions: int | None) -> list[Event]:
    return [
        new_event("order", "o-7", "OrderPaid", {"amount": 1}, version=version)
        for version in versions
    ]


def test_nothing_to_fold_returns_the_start() -> None:
    start = Folded({"status": "paid"}, 4)
    assert replay(ORDER.reducer, [], start=start) == start
    assert replay(ORDER.reducer, []) == Folded(None, 0)


@pytest.mark.parametrize(
    ("versions", "start_version", "expected", "got"),
    [
        ((2,), 0, 1, 2),  # the history does not start at 1
        ((1, 3), 0, 2, 3),  # a hole
        ((1, 1), 0, 2, 1),  # a repeated version
        ((1, 2, 2), 0, 3, 2),
        ((2, 1), 0, 1, 2),  # out of order
        ((5,), 5, 6, 5),  # the snapshot already holds version 5
        ((7,), 5, 6, 7),  # the tail skips one after the snapshot
        ((None,), 0, 1, None),  # an unnumbered event is never folded
    ],
)
def test_a_gap_or_repeat_raises_replay_gap(
    versions: tuple[int | None, ...], start_version: int, expected: int, got: int | None
) -> None:
    events = _numbered(*versions)
    start = Folded({"status": "paid"} if start_version else None, start_version)
    with pytest.raises(ReplayGap) as caught:
        replay(_counting_amounts, events, start=start)
    message = str(caught.value)
    assert "order o-7" in message
    assert f"expected version {expected}" in message and f"got {got}" in message
    assert caught.value.retriable is False


def _counting_amounts(state: State | None, event: Event) -> State:
    return {"count": (state or {}).get("count", 0) + 1}
