"""A domain whose access rules need roles: clerks send, auditors (and clerks) read.

``EVENTFLEET_DOMAINS=tests.e2e.guarded:domains`` serves it beside the order domain, so the role
matrix covers both an open domain and a guarded one.
"""

from __future__ import annotations

from snapshot_rules.access import Access, read_with_roles, send_with_roles
from snapshot_rules.domain import NEW, Domain, Domains, event
from snapshot_rules.replay import State
from topics.envelope import Event
from workers.examples.domains.order import ORDER


def count(state: State | None, e: Event) -> State:
    return {"n": (state or {}).get("n", 0) + 1}


LEDGER = Domain(
    name="ledger",
    events={"Opened": event(after=[NEW]), "Posted": event()},
    reducer=count,
    access=Access(
        send={"Opened": send_with_roles("supervisor")},
        default=send_with_roles("clerk", "supervisor"),
        read=read_with_roles("auditor", "clerk", "supervisor"),
    ),
)


def domains() -> Domains:
    return Domains([ORDER, LEDGER])
