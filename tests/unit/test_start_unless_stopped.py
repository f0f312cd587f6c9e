"""A worker stopped while its start still waits (on a broker, a group join, a recovery) leaves
at once, like any other stop; one whose start ends first runs, and a failed start fails it.

Seen from outside: four appenders joining one group on a loaded machine were still starting
minutes later, and SIGTERM left two of them running until SIGKILL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.waiting import wait_for, within
from workers.runtime.serve import _start_unless_stopped


@dataclass
class App:
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    fails: bool = False

    async def start(self) -> None:
        if self.fails:
            raise RuntimeError("no brokers")
        try:
            await self.started.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


@dataclass
class Fleet:
    app: App = field(default_factory=App)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)


def fleet_of(app: App) -> Any:
    return Fleet(app)


async def test_a_stop_during_a_start_that_never_ends_returns_false_and_cancels_it() -> None:
    fleet = fleet_of(App())
    starting = asyncio.create_task(_start_unless_stopped(fleet))
    fleet.stopped.set()  # SIGTERM, with the start under way and never to end
    assert await within(starting, timeout_s=5, what="the stopped start") is False
    await wait_for(lambda: fleet.app.cancelled, timeout_s=5, what="the start cancelled")


async def test_a_start_that_ends_first_returns_true() -> None:
    fleet = fleet_of(App())
    fleet.app.started.set()
    assert await within(_start_unless_stopped(fleet), timeout_s=5, what="the start") is True
    assert not fleet.app.cancelled and not fleet.stopped.is_set()


async def test_a_start_that_fails_raises_its_error() -> None:
    fleet = fleet_of(App(fails=True))
    with pytest.raises(RuntimeError, match="no brokers"):
        await within(_start_unless_stopped(fleet), timeout_s=5, what="the start to fail")


async def test_a_start_still_under_way_says_so_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    fleet = fleet_of(App())
    starting = asyncio.create_task(_start_unless_stopped(fleet, warn_every_s=0.05))

    def warned() -> bool:
        return any("still starting after" in r.getMessage() for r in caplog.records)

    await wait_for(warned, timeout_s=5, what="a warning that the start is still under way")
    assert not starting.done()  # warned, still waiting: a warning is no verdict
    fleet.stopped.set()
    assert await within(starting, timeout_s=5, what="the stopped start") is False
    assert all(
        r.levelname == "WARNING" for r in caplog.records if "still starting" in r.getMessage()
    )


async def test_a_start_that_ends_in_time_warns_nothing(caplog: pytest.LogCaptureFixture) -> None:
    fleet = fleet_of(App())
    fleet.app.started.set()
    starting = _start_unless_stopped(fleet, warn_every_s=0.05)
    assert await within(starting, timeout_s=5, what="the start") is True
    assert not [r for r in caplog.records if "still starting" in r.getMessage()]
