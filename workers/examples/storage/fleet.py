"""The storage examples' collections as fleet domains, next to the default ones.

``EVENTFLEET_DOMAINS=workers.examples.storage.fleet:domains_with_storage eventfleet dev``
then snapshots the ``game_states`` and ``users`` documents that
``workers.examples.storage.games_and_users`` writes (with the same type prefixes), routes them
downstream and answers their queries.
"""

from __future__ import annotations

from snapshot_rules.domain import Domains, Route
from workers.examples.domains import default_domains
from workers.storage.domain import storage_domain

GAME_STATES = storage_domain("game_states", type_prefix="GameState", routes=(Route("game_states"),))
USERS = storage_domain(
    "users",
    type_prefix="User",
    routes=(Route("users"), Route("user_emails", frozenset({"UserEmailChanged"}))),
    mapped_types=("UserEmailChanged",),
)


def domains_with_storage() -> Domains:
    """The default domains plus the examples' ``game_states`` and ``users`` collections."""
    return Domains([*default_domains(), GAME_STATES, USERS])
