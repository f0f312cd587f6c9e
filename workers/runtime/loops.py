"""The event loop a command runs on: asyncio's, or uvloop's for the serving commands.

A module of its own, apart from ``serve``: a one-shot command (replay, erase, topics, …) runs
on a loop without importing Faust and the agents, about half a second of start-up it never
needs."""

from __future__ import annotations

import asyncio
import signal
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


async def interruptible(main: Coroutine[object, None, T]) -> T:
    """``main``, with Ctrl-C (SIGINT) and SIGTERM taken through the loop's own signal handling:
    either cancels ``main`` (its cleanup runs) and ends it as ``KeyboardInterrupt``.

    The loop's handling writes the signal to its wake-up pipe, so the loop wakes whatever it
    waits on. ``asyncio.run``'s own Ctrl-C handler, and a handler that raises, run only when
    the main thread runs Python code again: a command waiting on a quiet socket (``events
    --follow``) waited for its next bytes. Outside the main thread nothing is installed."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.getsignal(sig) for sig in signals}
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        if task is not None:
            task.cancel()

    try:
        for sig in signals:
            loop.add_signal_handler(sig, interrupt)
    except (RuntimeError, ValueError):  # not the main thread
        return await main
    try:
        return await main
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
            signal.signal(sig, before[sig])  # remove_signal_handler leaves the default
