"""The example domains shipped with eventfleet."""

from __future__ import annotations

from snapshot_rules.domain import Domains
from snapshot_rules.process import Processes
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.cart import CART
from workers.examples.domains.chat_room import CHAT_ROOM
from workers.examples.domains.game import GAME
from workers.examples.domains.order import ORDER
from workers.examples.domains.order_lifecycle import DEMO_PAYMENT_S, order_lifecycle
from workers.examples.domains.shipment import SHIPMENT
from workers.examples.domains.trading import ORDER_BOOK

__all__ = [
    "ACCOUNT",
    "CART",
    "CHAT_ROOM",
    "GAME",
    "ORDER",
    "ORDER_BOOK",
    "SHIPMENT",
    "all_domains",
    "chat_domains",
    "default_domains",
    "default_processes",
    "demo_processes",
]


def default_domains() -> Domains:
    """The domains ``eventfleet dev`` enables."""
    return Domains([ORDER, ACCOUNT, CHAT_ROOM, SHIPMENT])


def chat_domains() -> Domains:
    """``EVENTFLEET_DOMAINS=workers.examples.domains:chat_domains``: order and chat room."""
    return Domains([ORDER, CHAT_ROOM])


def all_domains() -> Domains:
    """``EVENTFLEET_DOMAINS=workers.examples.domains:all_domains``: every example domain.

    Order, account, chat room and shipment, plus the shopping cart (async), the order book (sync)
    and the game log (async, snapshots by time).
    """
    return Domains([ORDER, ACCOUNT, CHAT_ROOM, SHIPMENT, CART, ORDER_BOOK, GAME])


def default_processes() -> Processes:
    """``EVENTFLEET_PROCESSES=workers.examples.domains:default_processes``: ``order_lifecycle``
    (an unpaid order cancelled after 15 minutes), with the default domains."""
    return Processes([order_lifecycle()])


def demo_processes() -> Processes:
    """What ``eventfleet dev --demo`` runs: ``order_lifecycle`` with a 4-second payment deadline."""
    return Processes([order_lifecycle(payment_s=DEMO_PAYMENT_S)])
