"""The serving commands run on the event loop EVENTFLEET_EVENT_LOOP names; a bad name is refused."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from topics.errors import ConfigError
from workers.cli.entry import SERVING, run
from workers.runtime.settings import Settings


async def _loop_and_answer() -> tuple[type, int]:
    await asyncio.sleep(0)  # a turn of the loop: it really runs
    return type(asyncio.get_running_loop()), 7


def test_uvloop_runs_the_command_on_a_uvloop_loop() -> None:
    loop_type, answer = run(_loop_and_answer(), loop="uvloop")
    assert issubclass(loop_type, uvloop.Loop) and answer == 7


def test_asyncio_runs_it_on_pythons_own_loop() -> None:
    loop_type, answer = run(_loop_and_answer(), loop="asyncio")
    assert not issubclass(loop_type, uvloop.Loop)
    assert issubclass(loop_type, asyncio.BaseEventLoop) and answer == 7


def test_a_failure_inside_the_loop_reaches_the_caller_on_either_loop() -> None:
    async def fails() -> int:
        raise RuntimeError("no brokers")

    for loop in ("uvloop", "asyncio"):
        with pytest.raises(RuntimeError, match="no brokers"):
            run(fails(), loop=loop)


def test_uvloop_is_the_default_and_only_the_serving_commands_use_it() -> None:
    assert Settings.from_env({}).event_loop == "uvloop"
    assert set(SERVING) == {"worker", "dev"}


@pytest.mark.parametrize("value", ["libuv", "UVLOOP", "asyncio;rm", "tokio"])
def test_a_loop_that_is_not_uvloop_or_asyncio_is_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError, match="EVENTFLEET_EVENT_LOOP"):
        Settings.from_env({"EVENTFLEET_EVENT_LOOP": value})
