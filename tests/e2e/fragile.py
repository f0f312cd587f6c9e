"""A domain whose reducer fails on one value: what a bug in a team's domain code looks like."""

from __future__ import annotations

from snapshot_rules.domain import NEW, Domain, Domains, event
from snapshot_rules.replay import State
from snapshot_rules.rules import every
from snapshot_rules.schema import Number, fields
from topics.envelope import Event


def add(state: State | None, e: Event) -> State:
    if e.data["n"] == 13:
        raise ValueError("13 is unlucky")  # a reducer bug a client's input can reach
    return {"total": (state or {}).get("total", 0) + e.data["n"]}


LEDGER = Domain(
    name="ledger",
    events={"Entered": event(fields(n=Number(integer=True)), after=[NEW, "Entered"])},
    reducer=add,
    snapshot_rule=every(1),
)


def domains() -> Domains:
    """``EVENTFLEET_DOMAINS=tests.e2e.fragile:domains``."""
    return Domains([LEDGER])
