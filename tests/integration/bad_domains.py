"""Domain sets for the CLI: the mistakes newcomers make (one-line errors), and a retention."""

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


def retained_chat() -> Domains:
    """The chat room keeping its newest 10 events hot (``eventfleet archive``'s tests)."""
    from dataclasses import replace

    from snapshot_rules.domain import Retention
    from workers.examples.domains.chat_room import CHAT_ROOM

    return Domains([replace(CHAT_ROOM, retention=Retention(keep_last=10))])
