"""The domains of the storage end-to-end fleet: the defaults plus ``game_states``, snapshot every 3."""

from __future__ import annotations

from snapshot_rules.domain import Domains, Route
from snapshot_rules.rules import every
from workers.examples.domains import default_domains
from workers.storage import storage_domain


def storage_test_domains() -> Domains:
    """``EVENTFLEET_DOMAINS=tests.e2e.storage_domains:storage_test_domains``."""
    games = storage_domain(
        "game_states",
        type_prefix="GameState",
        snapshot_rule=every(3),
        routes=(Route("game_states"),),
    )
    return Domains([*default_domains(), games])
