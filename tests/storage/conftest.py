"""Storage test fixtures: a fresh database per test on the stack's MongoDB, and one on a standalone
server (``standalone_url``, in ``tests.stack_fixtures``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from workers.adapters.mongo import connect, database

Document = dict[str, Any]
TIMEOUT_MS = 10_000


@pytest.fixture
async def client(stack: Any) -> AsyncIterator[AsyncMongoClient[Document]]:
    mongo = connect(stack.urls.mongo_url, timeout_ms=TIMEOUT_MS)
    yield mongo
    await mongo.close()


@pytest.fixture
async def db(
    client: AsyncMongoClient[Document], unique_name: str
) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of this test's own, dropped afterwards."""
    yield database(client, unique_name)
    await client.drop_database(unique_name)


@pytest.fixture
async def other_db(stack: Any, unique_name: str) -> AsyncIterator[AsyncDatabase[Document]]:
    """The same database as ``db`` through a second client, as another process would see it."""
    mongo = connect(stack.urls.mongo_url, timeout_ms=TIMEOUT_MS)
    yield database(mongo, unique_name)
    await mongo.close()


@pytest.fixture
async def standalone_db(
    standalone_url: str, unique_name: str
) -> AsyncIterator[AsyncDatabase[Document]]:
    mongo = connect(standalone_url, timeout_ms=TIMEOUT_MS)
    yield database(mongo, unique_name)
    await mongo.drop_database(unique_name)
    await mongo.close()
