"""Pytest fixtures that give tests the embedded stack and names no other test uses."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.redis_keys import claim
from workers.devtools.embedded import EmbeddedStack, free_port

__all__ = ["private_stack", "stack", "standalone_url", "unique_name"]


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


@pytest.fixture(scope="session")
def standalone_url() -> Iterator[str]:
    """A SecantusDB that reports a standalone topology (no ``setName`` in ``hello``), as a
    standalone mongod does: the fleet then runs no transactions and no change streams there."""
    binary = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    workdir = Path(tempfile.mkdtemp(prefix="standalone-mongo-"))
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
