"""The default domains as a newer fleet has them: order knows one more event type
(``OrderGiftWrapped``, after ``OrderPlaced``; ``OrderShipped`` may follow it too). A commands
process runs it (``EVENTFLEET_DOMAINS=tests.e2e.newer:domains``) beside an older appender,
as during a rolling upgrade."""

from __future__ import annotations

from dataclasses import replace

from snapshot_rules.domain import Domains, event
from workers.examples.domains import default_domains
from workers.examples.domains.order import ORDER

NEWER_ORDER = replace(
    ORDER,
    events={
        **ORDER.events,
        "OrderGiftWrapped": event(after=["OrderPlaced"]),
        "OrderShipped": replace(
            ORDER.events["OrderShipped"], after=frozenset({"OrderPaid", "OrderGiftWrapped"})
        ),
    },
)


def domains() -> Domains:
    return Domains([NEWER_ORDER if d.name == "order" else d for d in default_domains()])
