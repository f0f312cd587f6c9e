"""The tests' one wait: it holds, fails after its bound, and tells of the waits that came close."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.waiting import WAITS, NearMiss, near_misses, record, wait_for, within


class Clock:
    """A condition true from its ``n``-th check on."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.checks = 0

    def __call__(self) -> bool:
        self.checks += 1
        return self.checks >= self.n


async def test_a_wait_returns_once_its_condition_holds_plain_or_awaited() -> None:
    plain = Clock(3)
    await wait_for(plain, timeout_s=5, interval_s=0)
    assert plain.checks == 3

    awaited = Clock(2)

    async def check() -> bool:
        return awaited()

    await wait_for(check, timeout_s=5, interval_s=0)
    assert awaited.checks == 2


async def test_a_wait_past_its_bound_fails_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0.05s waiting for the sky"):
        await wait_for(lambda: False, timeout_s=0.05, what="the sky", interval_s=0.01)


async def test_a_wait_that_took_over_a_quarter_of_its_bound_is_written_as_a_near_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WAITS, str(tmp_path))
    await wait_for(Clock(1), timeout_s=60, what="at once")  # far from its bound: not written
    once = Clock(1)
    await wait_for(once, timeout_s=0, what="one check")  # no bound to come near: not written
    late = Clock(4)
    await wait_for(late, timeout_s=0.08, what="late", interval_s=0.01)  # >= 0.03 s of 0.08 s
    (miss,) = near_misses(str(tmp_path))
    assert (miss.what, miss.timeout_s) == ("late", 0.08)
    assert miss.share > 0.25
    assert miss.test.startswith("tests/unit/test_waiting.py::test_a_wait_that_took_over_a_quarter")


async def test_within_returns_what_it_awaited() -> None:
    async def answer() -> int:
        return 42

    assert await within(answer(), timeout_s=5, what="the answer") == 42
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("set")
    assert await within(done, timeout_s=5, what="the future") == "set"


async def test_within_past_its_bound_fails_naming_what_it_waited_for() -> None:
    never = asyncio.Event()
    with pytest.raises(AssertionError, match=r"timed out after 0.05s waiting for the sky") as e:
        await within(never.wait(), timeout_s=0.05, what="the sky")
    assert isinstance(e.value.__cause__, TimeoutError)


async def test_within_lets_the_awaitables_own_timeout_through() -> None:
    async def gives_up() -> None:
        raise TimeoutError("its own")

    with pytest.raises(TimeoutError, match="its own"):
        await within(gives_up(), timeout_s=5, what="its own timeout")


async def test_within_that_took_over_a_quarter_of_its_bound_is_written_as_a_near_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WAITS, str(tmp_path))
    assert await within(asyncio.sleep(0, "fast"), timeout_s=60, what="at once") == "fast"
    assert near_misses(str(tmp_path)) == []  # far from its bound: not written
    await within(asyncio.sleep(0.3), timeout_s=1, what="late")  # >= 0.3 s of 1 s
    (miss,) = near_misses(str(tmp_path))
    assert (miss.what, miss.timeout_s) == ("late", 1)
    assert miss.share > 0.25
    assert miss.test.startswith("tests/unit/test_waiting.py::test_within_that_took_over_a_quarter")


def test_near_misses_of_every_process_come_closest_first_and_at_most_as_many_as_asked(
    tmp_path: Path,
) -> None:
    shares = (0.6, 0.95, 0.7, 0.8)
    for i, share in enumerate(shares):
        miss = NearMiss(f"wait {i}", share * 10, 10, f"tests/t.py::test_{i}")
        record(miss, str(tmp_path))
    Path(tmp_path, "waits-1.jsonl").write_bytes(
        Path(tmp_path, f"waits-{os.getpid()}.jsonl").read_bytes()
    )
    found = near_misses(str(tmp_path), most=3)
    assert [round(m.share, 2) for m in found] == [0.95, 0.95, 0.8]
    assert found[0].line().startswith(" 95%    9.5 s of 10.0 s  wait 1  (tests/t.py::test_1)")


def test_without_a_directory_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WAITS, raising=False)
    monkeypatch.chdir(tmp_path)
    record(NearMiss("w", 9, 10, "t"))
    assert list(tmp_path.iterdir()) == []


def test_a_long_description_is_cut_in_its_line() -> None:
    line = NearMiss("x" * 100, 6, 10, "t").line()
    assert "x" * 57 + "..." in line
    assert "x" * 58 not in line
