"""Example domain **account** (sync): every request is validated against the replayed balance.

Amounts are whole numbers of the currency's minor unit (cents): integer arithmetic keeps
replay exact, so "balance 0" (required to close) is reachable and never off by a rounding.
"""

from __future__ import annotations

from snapshot_rules.domain import Domain, Mode, Route, event
from snapshot_rules.personal import personal
from snapshot_rules.replay import State
from snapshot_rules.rules import every, on
from snapshot_rules.schema import Number, Text, fields
from topics.envelope import Event

OPEN = "open"
CLOSED = "closed"
MAX_BALANCE = 10**15
"""Far above any real balance, and far below 2**63: snapshots stay storable as BSON int64."""

_AMOUNT = Number(positive=True, integer=True)


def reduce_account(state: State | None, event: Event) -> State:
    """Fold one stored account event; pure, so replay is deterministic."""
    data = event.data
    current = dict(state or {})
    if event.type == "AccountOpened":
        return {"owner": data["owner"], "balance": 0, "status": OPEN}
    if event.type == "MoneyDeposited":
        return {**current, "balance": current["balance"] + data["amount"]}
    if event.type == "MoneyWithdrawn":
        return {**current, "balance": current["balance"] - data["amount"]}
    if event.type == "AccountClosed":
        return {**current, "status": CLOSED}
    return current


def validate_account(state: State | None, requested: Event) -> str | None:
    """The account's rules on its current state: None accepts, a sentence rejects."""
    kind = requested.type
    if kind == "AccountOpened":
        # not its owner: a personal field, sealed in the state (its ciphertext in a refusal)
        return None if state is None else "it is already open"
    if state is None:
        return f"it has not been opened; {kind} needs an AccountOpened first"
    if state["status"] == CLOSED:
        return "it is closed, and nothing may follow AccountClosed"
    balance: int = state["balance"]
    if kind == "MoneyDeposited":
        amount: int = requested.data["amount"]
        if balance + amount > MAX_BALANCE:
            return f"depositing {amount} would raise the balance of {balance} above {MAX_BALANCE}"
    elif kind == "MoneyWithdrawn":
        amount = requested.data["amount"]
        if amount > balance:
            return f"withdrawing {amount} would overdraw the balance of {balance}"
    elif kind == "AccountClosed" and balance != 0:
        return f"its balance is {balance}; only an account at balance 0 may close"
    return None


ACCOUNT = Domain(
    name="account",
    events={
        "AccountOpened": event(fields(closed=True, owner=Text(max_length=200))),
        "MoneyDeposited": event(fields(closed=True, amount=_AMOUNT)),
        "MoneyWithdrawn": event(fields(closed=True, amount=_AMOUNT)),
        "AccountClosed": event(fields(closed=True)),
    },
    reducer=reduce_account,
    mode=Mode.SYNC,
    validator=validate_account,
    snapshot_rule=every(20) | on("AccountClosed"),
    routes=(Route("accounts"),),
    personal=personal("owner"),  # the holder's name; the subject is the account (its id)
)
