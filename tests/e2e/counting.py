"""A domain that snapshots every third event: the snapshot table's e2e tests count with it."""

from __future__ import annotations

from snapshot_rules.domain import Domain, Domains, event
from snapshot_rules.replay import State
from snapshot_rules.rules import every
from topics.envelope import Event


def count(state: State | None, e: Event) -> State:
    return {"n": (state or {}).get("n", 0) + 1}


TALLY = Domain(name="tally", events={"Counted": event()}, reducer=count, snapshot_rule=every(3))


def domains() -> Domains:
    """``EVENTFLEET_DOMAINS=tests.e2e.counting:domains``."""
    return Domains([TALLY])
