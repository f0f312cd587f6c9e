"""Pytest fixtures that give tests the embedded stack and names no other test uses."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.redis_keys import claim
from workers.devtools.embedded import EmbeddedStack

__all__ = ["private_stack", "stack", "unique_name"]


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[EmbeddedStack]:
    """The stack shared by the whole session; tests keep apart through ``unique_name``."""
    async with EmbeddedStack() as started:
        yield started


@pytest.fixture
async def private_stack() -> AsyncIterator[EmbeddedStack]:
    """A whole stack of this test's own (about 1 s to start), safe to stop, pause or kill."""
    # Tansu keeps topics in memory only: after kill() and start() it is an empty new broker.
    async with EmbeddedStack(start_redis=True) as own:
        yield own


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses, valid as a topic, a group, a database and a key prefix."""
    # MongoDB database names are the strictest: at most 63 bytes and no '.', '/', '$' or space.
    test = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    return claim(f"{test[:40]}_{uuid.uuid4().hex[:8]}")  # its Redis keys go with the session
