"""Storage test fixtures: a fresh database per test on the stack's MongoDB, and a standalone server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from workers.adapters.mongo import connect, database
from workers.devtools.embedded import free_port

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


@pytest.fixture(scope="session")
def standalone_url() -> Iterator[str]:
    """A SecantusDB that reports a standalone topology: no transactions, no change streams."""
    binary = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    workdir = Path(tempfile.mkdtemp(prefix="storage-standalone-"))
    (workdir / "secantusd.toml").touch()  # an explicit empty config: no user config leaks in
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--config",
            str(workdir / "secantusd.toml"),
            "--standalone",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(workdir / "data"),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process, deadline_s=30)
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        process.kill()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def standalone_db(
    standalone_url: str, unique_name: str
) -> AsyncIterator[AsyncDatabase[Document]]:
    mongo = connect(standalone_url, timeout_ms=TIMEOUT_MS)
    yield database(mongo, unique_name)
    await mongo.drop_database(unique_name)
    await mongo.close()


def _wait_listening(port: int, process: subprocess.Popen[bytes], *, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"secantusd-py --standalone exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"secantusd-py --standalone did not listen on {port} in {deadline_s} s")
