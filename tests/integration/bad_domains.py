"""Domain sets with the mistakes newcomers make, for the CLI's one-line errors."""

from __future__ import annotations

from snapshot_rules.domain import NEW, Domain, Domains, event
from snapshot_rules.replay import State
from topics.envelope import Event


def _fold(state: State | None, e: Event) -> State:
    return {"last": e.type}


def typo_in_after() -> Domains:
    """``after=`` names 'DeviceRegisterd', a typo of an event type."""
    sensor = Domain(
        name="sensor",
        events={
            "DeviceRegistered": event(after=[NEW]),
            "DeviceRetired": event(after=["DeviceRegisterd"]),
        },
        reducer=_fold,
    )
    return Domains([sensor])


def not_domains() -> list[str]:
    return ["sensor"]
