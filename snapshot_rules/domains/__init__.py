"""The example domains shipped with eventfleet."""

from __future__ import annotations

from snapshot_rules.domain import Domains
from snapshot_rules.domains.account import ACCOUNT
from snapshot_rules.domains.chat_room import CHAT_ROOM
from snapshot_rules.domains.order import ORDER

__all__ = ["ACCOUNT", "CHAT_ROOM", "ORDER", "chat_domains", "default_domains"]


def default_domains() -> Domains:
    """The domains ``eventfleet dev`` enables."""
    return Domains([ORDER, ACCOUNT, CHAT_ROOM])


def chat_domains() -> Domains:
    """``EVENTFLEET_DOMAINS=snapshot_rules.domains:chat_domains``: order and chat room."""
    return Domains([ORDER, CHAT_ROOM])
