"""Shared fixtures: the embedded stack (tests.stack_fixtures) and the fleet processes (tests.fleet)."""

from tests.fleet import fleet, no_fleet_outlives_the_session  # noqa: F401
from tests.stack_fixtures import private_stack, stack, unique_name  # noqa: F401
