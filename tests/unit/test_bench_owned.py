"""A bench's own child process (wrk, a baseline) never outlives the step that started it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from workers.devtools.bench.owned import owned


def state(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


async def test_a_step_left_by_an_interrupt_kills_its_child_and_the_childs_own_children() -> None:
    script = "sleep 600 & echo $!; wait"
    with pytest.raises(KeyboardInterrupt):
        async with owned("sh", "-c", script, stdout=asyncio.subprocess.PIPE) as process:
            assert process.stdout is not None
            grandchild = int(await process.stdout.readline())
            raise KeyboardInterrupt
    assert process.returncode == -signal.SIGKILL
    for _ in range(1000):  # within 10 s: the grandchild, killed with the group, is reaped by init
        if state(grandchild) in (None, "Z"):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"the grandchild {grandchild} outlived its step")


async def test_a_cancelled_step_reaps_its_child() -> None:
    started = asyncio.Event()
    pids: list[int] = []

    async def step() -> None:
        async with owned("sleep", "600") as process:
            pids.append(process.pid)
            started.set()
            await process.wait()

    task = asyncio.create_task(step())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state(pids[0]) is None  # killed and reaped: no zombie left


async def test_a_child_that_exited_is_left_alone() -> None:
    async with owned("true") as process:
        assert await process.wait() == 0
    assert process.returncode == 0
