"""One timer for every wait that ends in the same slice of time, instead of one per wait.

A command's produce waits for its ack at most 1.5 timeouts. With a timeout context and a
shield per record, every command schedules and cancels its own timer and wraps its future
twice; here a wait is a future of our own, chained to the record's, and every wait due in
the same 50 ms slice is failed by one timer. A failed wait never cancels the record: it may
still be appended, which the caller reports as an unknown outcome.
"""

from __future__ import annotations

import asyncio
import math
from functools import partial
from typing import Protocol, TypeVar

T = TypeVar("T")
SLICE_S = 0.05


class _Waiter(Protocol):
    """What a slice's timer needs of a wait, whatever its result type: a future's two methods."""

    def done(self) -> bool: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class SharedDeadlines:
    """Waits bounded by ``timeout_s`` (rounded up to the next 50 ms slice), one timer per slice."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._slices: dict[int, list[_Waiter]] = {}

    def wait(self, future: asyncio.Future[T]) -> asyncio.Future[T]:
        """What to await for the result of ``future``, or TimeoutError once its slice ends;
        ``future`` is left running either way (cancelling the caller cancels only the wait).

        Not a coroutine: the caller awaits the wait itself, one frame less on every resume.
        """
        if future.done():
            return future
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(partial(_copy, target=waiter))
        slot = math.ceil((loop.time() + self._timeout_s) / SLICE_S)
        waiters = self._slices.get(slot)
        if waiters is None:
            waiters = self._slices[slot] = []
            loop.call_at(slot * SLICE_S, self._expire, slot)
        waiters.append(waiter)
        return waiter

    def _expire(self, slot: int) -> None:
        for waiter in self._slices.pop(slot, ()):
            if not waiter.done():
                waiter.set_exception(TimeoutError())


def _copy(source: asyncio.Future[T], target: asyncio.Future[T]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
