"""Shared fixtures: the embedded stack (tests.stack_fixtures) and the fleet processes (tests.fleet);
and the order files run in: the long ones first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet import fleet, no_fleet_outlives_the_session  # noqa: F401
from tests.redis_keys import no_keys_outlive_the_session  # noqa: F401
from tests.stack_fixtures import private_stack, stack, unique_name  # noqa: F401

HERE = Path(__file__).parent
LONGEST_FIRST = ("e2e", "console", "integration", "bus", "storage", "sync", "contracts")
"""Directories in the order their files start: with whole files spread over the workers
(``--dist loadfile``), the long fault scenarios start at once and the many short files fill in
behind them, instead of one long file running alone at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        part = Path(str(item.fspath)).relative_to(HERE).parts[0]
        return LONGEST_FIRST.index(part) if part in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order
