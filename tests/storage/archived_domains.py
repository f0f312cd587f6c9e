"""Domains for ``eventfleet archive`` on a storage collection (``EVENTFLEET_DOMAINS``)."""

from __future__ import annotations

from snapshot_rules.domain import Domains, Retention
from workers.storage import storage_domain


def retained_games() -> Domains:
    """The ``games`` storage collection keeping each document's newest 3 events hot."""
    return Domains([storage_domain("games", retention=Retention(keep_last=3))])
