"""The one way tests wait: poll a condition until it holds (``wait_for``), or await an awaitable
(``within``), and fail naming it after a bound.

A wait that held, but only after more than a quarter of its bound, is a near miss: the closest
are the first to fail on a slower or busier machine. Where ``EVENTFLEET_TEST_WAITS`` names a
directory (the test run's ``tests/conftest.py`` makes one), each near miss is written there, one
JSON line per wait, and the run ends with the closest of them (``near_misses``), so a bound that
is too tight is seen before it costs a red run. A bound of 0 (one check, no wait) has no margin
to tell of.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson

WAITS = "EVENTFLEET_TEST_WAITS"
"""The directory each test process writes its near misses to (unset: none are written)."""
NEAR = 0.25
"""A wait that took more than this share of its bound is a near miss."""

T = TypeVar("T")


async def wait_for(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float,
    what: str = "the condition",
    interval_s: float = 0.02,
) -> None:
    """Poll ``check`` (plain or async) until it is true; raise AssertionError after ``timeout_s``."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            _held(what, started, timeout_s)
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def within(awaitable: Awaitable[T], *, timeout_s: float, what: str) -> T:
    """``awaitable``'s result; AssertionError naming ``what`` if it takes over ``timeout_s``.

    A TimeoutError the awaitable raises itself, before the bound, is its own and goes through."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s) as bound:
            result = await awaitable
    except TimeoutError as timeout:
        if not bound.expired():
            raise
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}") from timeout
    _held(what, started, timeout_s)
    return result


def _held(what: str, started: float, timeout_s: float) -> None:
    """Record a wait that held, since ``started``, as a near miss if it came close to its bound."""
    taken = time.monotonic() - started
    if timeout_s > 0 and taken > NEAR * timeout_s:
        record(NearMiss(what, taken, timeout_s, _current_test()))


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A wait that held after more than a quarter of its bound: what it waited for, how long, in
    which test."""

    what: str
    taken_s: float
    timeout_s: float
    test: str

    @property
    def share(self) -> float:
        return self.taken_s / self.timeout_s

    def line(self) -> str:
        what = self.what if len(self.what) <= 60 else self.what[:57] + "..."
        return (
            f"{self.share:4.0%}  {self.taken_s:5.1f} s of {self.timeout_s:.1f} s  {what}  "
            f"({self.test})"
        )


def record(miss: NearMiss, directory: str | None = None) -> None:
    """Append ``miss`` to this process's file in ``directory`` (default: ``$WAITS``; neither:
    nothing is written)."""
    directory = directory or os.environ.get(WAITS)
    if not directory:
        return
    with Path(directory, f"waits-{os.getpid()}.jsonl").open("ab") as file:
        file.write(orjson.dumps(miss, option=orjson.OPT_APPEND_NEWLINE))


def near_misses(directory: str, *, most: int = 12) -> list[NearMiss]:
    """The near misses every process wrote to ``directory``, the closest to its bound first."""
    found = [
        NearMiss(**orjson.loads(line))
        for path in sorted(Path(directory).glob("waits-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    return sorted(found, key=lambda miss: miss.share, reverse=True)[:most]


def _current_test() -> str:
    """The test running in this process, as pytest names it (``PYTEST_CURRENT_TEST``)."""
    return os.environ.get("PYTEST_CURRENT_TEST", "outside a test").rsplit(" ", 1)[0]
