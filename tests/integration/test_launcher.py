"""The launcher (``tests/launcher.py``) starts a fleet process that is what a fresh
``python -m workers.cli`` would be: the same exit codes and words for the same arguments,
exactly the environment asked for (nothing of the launcher's own), a session of its own,
stdin from ``/dev/null``, and an exit status however it ends (a signal included)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.launcher import FRESH, LAUNCHED, Child, Launcher, start_fleet_process
from tests.waiting import within
from workers.devtools.embedded import free_port


@pytest.fixture
async def launcher(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Launcher]:
    """A launcher of this test's own, started while its environment holds a bad setting."""
    monkeypatch.setenv("EVENTFLEET_PARTITIONS", "abc")
    started = await Launcher.start()
    monkeypatch.delenv("EVENTFLEET_PARTITIONS")
    try:
        yield started
    finally:
        await started.aclose()


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}, **extra}


def name_of(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


async def exit_of(child: Child) -> int:
    return await within(child.wait(), timeout_s=60, what=f"process {child.pid} to exit")


@pytest.mark.parametrize("argv", [
    ("worker", "--role", "commands"),
    ("worker", "--role", "apender"),
    ("--version",),
])  # fmt: skip
async def test_a_launched_process_answers_as_a_fresh_one_with_the_environment_asked_for(
    launcher: Launcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]
) -> None:
    env = clean_env(EVENTFLEET_HTTP_PORT="x")  # a bad port: the start refuses it, code 2
    launched_log, fresh_log = tmp_path / "launched.log", tmp_path / "fresh.log"
    launched_log.touch()
    launched = await launcher.launch(argv, env, str(launched_log))
    monkeypatch.setenv(FRESH, "1")
    fresh = await start_fleet_process(argv, env, fresh_log)
    assert isinstance(fresh, asyncio.subprocess.Process)
    codes = await exit_of(launched), await exit_of(fresh)
    said = launched_log.read_text(), fresh_log.read_text()
    assert codes[0] == codes[1] and said[0] == said[1], (codes, said)
    assert "EVENTFLEET_PARTITIONS" not in said[0]  # the launcher's own environment stays its own
    if argv[0] == "worker":
        assert codes[0] == 2 and ("EVENTFLEET_HTTP_PORT='x'" in said[0]) != ("apender" in argv)


async def test_a_launched_process_has_its_session_and_no_stdin_and_dies_by_a_signal(
    launcher: Launcher, tmp_path: Path
) -> None:
    # Kafka at a port nobody listens on: the worker keeps trying until it is stopped.
    nowhere = f"kafka://127.0.0.1:{free_port()}"
    env = clean_env(EVENTFLEET_KAFKA_URL=nowhere, EVENTFLEET_HTTP_PORT=str(free_port()))
    log = tmp_path / "fleet.log"
    log.touch()
    child = await launcher.launch(("worker", "--role", "commands"), env, str(log))
    assert os.getsid(child.pid) == child.pid and os.getpgid(child.pid) == child.pid
    assert os.readlink(f"/proc/{child.pid}/fd/0") == os.devnull
    assert name_of(child.pid) == f"{LAUNCHED}commands"  # by its role
    assert child.returncode is None
    child.send_signal(signal.SIGKILL)
    assert await exit_of(child) == -signal.SIGKILL
    child.send_signal(signal.SIGTERM)  # known to be gone: not signalled, as asyncio's Process
