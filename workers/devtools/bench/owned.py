"""A child process the bench owns: it never outlives the step that started it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def owned(
    *argv: str, stdout: int | None = None, stderr: int | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``asyncio.create_subprocess_exec(*argv)`` in a session of its own, killed with
    its whole group when the block is left before it exited (an interrupt, a failure).

    A child left running would keep the bench's stderr open (its caller then waits on it for
    as long as the child lives) and keep working against a stack that is gone; the bench's
    data is disposable, so nothing is drained.
    """
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=stdout, stderr=stderr, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                # SIGKILL cannot be ignored: the reap is immediate; shielded, so a cancelled
                # step still reaps its child rather than leaving a zombie to the loop's close.
                await asyncio.shield(process.wait())
