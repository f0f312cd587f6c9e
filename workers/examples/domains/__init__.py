"""The example domains shipped with eventfleet."""

from __future__ import annotations

from snapshot_rules.domain import Domains
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.cart import CART
from workers.examples.domains.chat_room import CHAT_ROOM
from workers.examples.domains.game import GAME
from workers.examples.domains.order import ORDER
from workers.examples.domains.trading import ORDER_BOOK

__all__ = [
    "ACCOUNT",
    "CART",
    "CHAT_ROOM",
    "GAME",
    "ORDER",
    "ORDER_BOOK",
    "all_domains",
    "chat_domains",
    "default_domains",
]


def default_domains() -> Domains:
    """The domains ``eventfleet dev`` enables."""
    return Domains([ORDER, ACCOUNT, CHAT_ROOM])


def chat_domains() -> Domains:
    """``EVENTFLEET_DOMAINS=workers.examples.domains:chat_domains``: order and chat room."""
    return Domains([ORDER, CHAT_ROOM])


def all_domains() -> Domains:
    """``EVENTFLEET_DOMAINS=workers.examples.domains:all_domains``: every example of seed 004.

    Order, account and chat room, plus the shopping cart (async), the order book (sync) and the
    game log (async, snapshots by time).
    """
    return Domains([ORDER, ACCOUNT, CHAT_ROOM, CART, ORDER_BOOK, GAME])
