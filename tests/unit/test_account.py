"""The account domain: reducer and validator tables, schema checks, and the no-overdraft invariant."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.domain import Mode
from snapshot_rules.replay import Folded, State, replay
from topics.envelope import Event, new_event
from topics.errors import InvalidEventData, TransitionRejected, UnknownEventType
from workers.cqrs.aggregate import AggregateRoot
from workers.examples.domains.account import ACCOUNT, MAX_BALANCE, reduce_account, validate_account


def _event(kind: str, data: dict[str, Any] | None = None, version: int = 1) -> Event:
    return new_event("account", "a1", kind, data or {}, version=version)


OPEN: State = {"owner": "ann", "balance": 50, "status": "open"}
EMPTY: State = {"owner": "ann", "balance": 0, "status": "open"}
CLOSED: State = {"owner": "ann", "balance": 0, "status": "closed"}


@pytest.mark.parametrize(
    ("state", "kind", "data", "expected"),
    [
        (None, "AccountOpened", {"owner": "ann"}, {"owner": "ann", "balance": 0, "status": "open"}),
        (OPEN, "MoneyDeposited", {"amount": 25}, {**OPEN, "balance": 75}),
        (OPEN, "MoneyWithdrawn", {"amount": 50}, {**OPEN, "balance": 0}),
        (EMPTY, "AccountClosed", {}, CLOSED),
    ],
)
def test_reducer_folds_each_event_type(
    state: State | None, kind: str, data: dict[str, Any], expected: State
) -> None:
    before = None if state is None else dict(state)
    assert reduce_account(state, _event(kind, data)) == expected
    assert state == before  # pure: the input state is not modified


@pytest.mark.parametrize(
    ("state", "kind", "data", "reason"),
    [
        (None, "AccountOpened", {"owner": "ann"}, None),
        (OPEN, "AccountOpened", {"owner": "bob"}, "already open"),
        (None, "MoneyDeposited", {"amount": 5}, "has not been opened"),
        (None, "MoneyWithdrawn", {"amount": 5}, "has not been opened"),
        (None, "AccountClosed", {}, "has not been opened"),
        (OPEN, "MoneyDeposited", {"amount": 5}, None),
        (OPEN, "MoneyDeposited", {"amount": MAX_BALANCE}, "above"),
        (OPEN, "MoneyWithdrawn", {"amount": 50}, None),
        (OPEN, "MoneyWithdrawn", {"amount": 51}, "would overdraw the balance of 50"),
        (OPEN, "AccountClosed", {}, "balance is 50"),
        (EMPTY, "AccountClosed", {}, None),
        (CLOSED, "MoneyDeposited", {"amount": 5}, "closed"),
        (CLOSED, "AccountClosed", {}, "closed"),
        (CLOSED, "AccountOpened", {"owner": "ann"}, "already open"),
    ],
)
def test_validator_table(
    state: State | None, kind: str, data: dict[str, Any], reason: str | None
) -> None:
    got = validate_account(state, _event(kind, data))
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


@pytest.mark.parametrize(
    ("kind", "data", "problem"),
    [
        ("MoneyDeposited", {"amount": 0}, "greater than 0"),
        ("MoneyDeposited", {"amount": -3}, "greater than 0"),
        ("MoneyWithdrawn", {"amount": 1.5}, "integer"),
        ("MoneyWithdrawn", {"amount": True}, "integer"),
        ("MoneyWithdrawn", {}, "data.amount is required"),
        ("AccountOpened", {"owner": ""}, "non-empty string"),
        ("AccountOpened", {"owner": "ann", "extra": 1}, "data.extra is not a known field"),
        ("AccountClosed", {"reason": "x"}, "not a known field"),
    ],
)
def test_schema_rejects_bad_data(kind: str, data: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidEventData, match=problem):
        ACCOUNT.check_data(kind, data)


def test_declaration() -> None:
    assert ACCOUNT.mode is Mode.SYNC
    assert ACCOUNT.downstream_topics() == ["accounts"]
    with pytest.raises(UnknownEventType, match="AccountFrozen"):
        ACCOUNT.check_data("AccountFrozen", {})


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("AccountOpened"), st.just({"owner": "ann"})),
        st.tuples(st.just("MoneyDeposited"), st.builds(dict, amount=st.integers(1, 500))),
        st.tuples(st.just("MoneyWithdrawn"), st.builds(dict, amount=st.integers(1, 500))),
        st.tuples(st.just("AccountClosed"), st.just({})),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(requests=OPERATIONS, snapshot_at=st.integers(0, 60))
def test_replaying_accepted_events_never_overdraws(
    requests: list[tuple[str, dict[str, Any]]], snapshot_at: int
) -> None:
    aggregate = AggregateRoot(ACCOUNT, "a1")
    for kind, data in requests:
        try:
            aggregate.record(kind, data)
        except TransitionRejected:
            pass  # rejected requests leave no event and no change of state
    accepted = aggregate.changes
    assert [event.version for event in accepted] == list(range(1, len(accepted) + 1))

    folded = Folded(None, 0)
    for event in accepted:
        folded = replay(ACCOUNT.reducer, [event], start=folded)
        assert folded.state is not None and folded.state["balance"] >= 0
    assert folded.state == aggregate.state
    if accepted:
        deposits = sum(e.data["amount"] for e in accepted if e.type == "MoneyDeposited")
        withdrawals = sum(e.data["amount"] for e in accepted if e.type == "MoneyWithdrawn")
        assert folded.state is not None and folded.state["balance"] == deposits - withdrawals
        assert accepted[0].type == "AccountOpened"
        assert all(e.type != "AccountOpened" for e in accepted[1:])
        closed = [i for i, e in enumerate(accepted) if e.type == "AccountClosed"]
        assert closed in ([], [len(accepted) - 1])  # nothing follows AccountClosed

    # Replay is deterministic and a snapshot anywhere changes nothing.
    cut = min(snapshot_at, len(accepted))
    middle = replay(ACCOUNT.reducer, accepted[:cut])
    assert replay(ACCOUNT.reducer, accepted[cut:], start=middle) == replay(
        ACCOUNT.reducer, accepted
    )
