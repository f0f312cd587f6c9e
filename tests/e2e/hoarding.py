"""A domain whose state keeps every blob it is given: what an unbounded fold looks like."""

from __future__ import annotations

from snapshot_rules.domain import Domain, Domains, event
from snapshot_rules.projection import Projection, View
from snapshot_rules.replay import State
from snapshot_rules.rules import every, on
from snapshot_rules.schema import Text, fields
from topics.envelope import Event


def hoard(state: State | None, e: Event) -> State:
    blobs = [*(state or {}).get("blobs", []), e.data["blob"]]
    return {"blobs": blobs, "sealed": e.type == "Sealed"}


def hoard_view(view: View | None, e: Event) -> View:
    return hoard(view, e)


HOARD = Domain(
    name="hoard",
    events={"BlobStored": event(fields(blob=Text(5000))), "Sealed": event(fields(blob=Text()))},
    reducer=hoard,
    snapshot_rule=every(10_000) | on("Sealed"),
    projections=(Projection("hoards", "hoards", frozenset({"hoard"}), hoard_view),),
)


def domains() -> Domains:
    """``EVENTFLEET_DOMAINS=tests.e2e.hoarding:domains``."""
    return Domains([HOARD])
