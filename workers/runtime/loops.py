"""The event loop a command runs on: asyncio's, or uvloop's for the serving commands.

A module of its own, apart from ``serve``: a one-shot command (replay, erase, topics, …) runs
on a loop without importing Faust and the agents, about half a second of start-up it never
needs."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TypeVar

T = TypeVar("T")


def run(main: Coroutine[object, None, T], *, loop: str) -> T:
    """``asyncio.run(main)``, on uvloop's loop when ``loop`` is ``uvloop``: the same semantics
    (a new loop, async generators and the default executor shut down), libuv underneath."""
    if loop == "uvloop":
        import uvloop  # here, not at the top: one-shot commands never pay for the import

        return uvloop.run(main)
    return asyncio.run(main)
