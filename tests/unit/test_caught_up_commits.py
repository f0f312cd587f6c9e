"""The commits agents ask for once they caught up: many requests are one commit, a request
while a commit runs is one more, and a failing commit ends the loop (its task says why)."""

from __future__ import annotations

import asyncio

import pytest

from tests.waiting import wait_for, within
from workers.stream.commits import CaughtUpCommits


class Commits:
    """A commit that counts its calls and, while ``hold`` is clear, does not return."""

    def __init__(self) -> None:
        self.calls = 0
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self) -> None:
        self.calls += 1
        await self.hold.wait()


async def test_requests_made_before_the_loop_runs_are_one_commit() -> None:
    commit = Commits()
    commits = CaughtUpCommits(commit, gap_s=0)
    for _ in range(5):
        commits.request()
    task = asyncio.create_task(commits.run())
    try:
        await wait_for(lambda: commit.calls == 1, timeout_s=5, what="one commit")
        commit.hold.clear()
        commits.request()  # the loop is alive and commits again when asked
        await wait_for(lambda: commit.calls == 2, timeout_s=5, what="a second commit")
        assert commit.calls == 2
    finally:
        commit.hold.set()
        task.cancel()


async def test_requests_while_a_commit_runs_are_one_more_commit() -> None:
    commit = Commits()
    commit.hold.clear()
    commits = CaughtUpCommits(commit, gap_s=0)
    task = asyncio.create_task(commits.run())
    try:
        commits.request()
        await wait_for(lambda: commit.calls == 1, timeout_s=5, what="the first commit")
        for _ in range(3):
            commits.request()  # while the first one runs
        commit.hold.set()
        await wait_for(lambda: commit.calls == 2, timeout_s=5, what="the one commit after it")
        commit.hold.clear()
        commits.request()
        await wait_for(lambda: commit.calls == 3, timeout_s=5, what="the next request's")
    finally:
        commit.hold.set()
        task.cancel()


async def test_a_commit_that_fails_ends_the_loop_with_its_error() -> None:
    async def refused() -> None:
        raise RuntimeError("the coordinator is gone")

    commits = CaughtUpCommits(refused, gap_s=0)
    commits.request()
    with pytest.raises(RuntimeError, match="coordinator"):
        await within(commits.run(), timeout_s=5, what="the loop to end")
