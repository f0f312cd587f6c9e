"""Both cores busy beside a fault scenario: ``stress-ng --cpu 2``, this test's own, for a block.

A guarantee that holds only when nothing is slow is not a guarantee: every fault scenario also
runs with both cores taken (``python -m tests`` installs stress-ng; without it the test fails
saying how, never skips).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.waiting import within

CPU_STRESS = pytest.mark.parametrize("stress", [False, True], ids=["idle", "stress-ng-cpu-2"])
"""Run a scenario twice: on an idle machine, and with ``stressed(True)`` around it."""


@asynccontextmanager
async def stressed(on: bool) -> AsyncIterator[None]:
    """``stress-ng --cpu 2`` for the block when ``on``; stopped by its own pid after it."""
    if not on:
        yield
        return
    assert shutil.which("stress-ng"), "stress-ng is missing: `python -m tests` installs it"
    stress = await asyncio.create_subprocess_exec(
        "stress-ng", "--cpu", "2", "--timeout", "300s", "--quiet"
    )
    try:
        yield
    finally:
        stress.terminate()
        await within(stress.wait(), timeout_s=30, what="stress-ng to stop")
