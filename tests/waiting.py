"""The one way tests wait: poll a condition until it holds, and fail naming it after a bound."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_for(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float,
    what: str = "the condition",
    interval_s: float = 0.02,
) -> None:
    """Poll ``check`` (plain or async) until it is true; raise AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)
