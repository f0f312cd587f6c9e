"""``eventfleet bench``: progress on stderr, tables on stdout, and no key left in a lent Redis."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from tests.cli import eventfleet
from tests.e2e.dev_runs import leftovers
from tests.waiting import within
from workers.devtools.bench.stack import forget_keys
from workers.devtools.embedded import EmbeddedStack
from workers.runtime.settings import Settings


async def test_bench_says_each_step_on_stderr_and_prints_only_tables(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    env = {
        "TMPDIR": str(tmp_path),
        "EVENTFLEET_KAFKA_URL": stack.urls.kafka_url,
        "EVENTFLEET_MONGO_URL": stack.urls.mongo_url,
        "EVENTFLEET_REDIS_URL": stack.urls.redis_url,
        "EVENTFLEET_KAFKA_IDEMPOTENCE": "false",
    }
    code, out, err = await eventfleet("bench", "state", "--json", "--events", "200", env=env)
    assert code == 0, err
    (table,) = [orjson.loads(line) for line in out.splitlines()]
    assert table["table"].startswith("state query: 4 rooms of 50 events") and table["rows"]
    steps = [line for line in err.splitlines() if line.startswith("  bench [")]
    assert any("state query" in s for s in steps) and steps[-1].endswith("done")
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []  # its run directory is gone


async def test_the_command_rows_are_driven_by_wrk_in_interleaved_rounds(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    env = {
        "TMPDIR": str(tmp_path),
        "EVENTFLEET_KAFKA_URL": stack.urls.kafka_url,
        "EVENTFLEET_MONGO_URL": stack.urls.mongo_url,
        "EVENTFLEET_REDIS_URL": stack.urls.redis_url,
        "EVENTFLEET_KAFKA_IDEMPOTENCE": "false",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "bench", "commands", "--json", "--events", "200",
        "--rounds", "2", env={**clean, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    # 20 wrk runs and four servers: more than the CLI tests' minute on a loaded machine.
    raw_out, raw_err = await within(
        process.communicate(), timeout_s=300, what="bench commands to exit"
    )
    code, out, err = process.returncode, raw_out.decode(), raw_err.decode()
    assert code == 0, err
    (table,) = [orjson.loads(line) for line in out.splitlines()]
    assert "2 interleaved rounds, alternating order; wrk; load " in table["table"]
    assert "checking every side does the work it is measured for" in err
    rows = table["rows"]
    # Each 64-conn row twice: against the coalesced aiohttp server, then against the floor.
    assert [(r["row"].split(", ", 1)[1], r["rounds"], r["baseline"].split(",")[0])
            for r in rows] == [
        ("64 conn, OrderPaid", 2, "minimal coalesced server"),
        ("64 conn, OrderPaid", 2, "floor server"),
        ("1 conn, OrderPaid", 2, "minimal naive server"),
        ("64 conn, OrderPlaced (new)", 2, "minimal coalesced server"),
        ("64 conn, OrderPlaced (new)", 2, "floor server"),
        ("1 conn, OrderPlaced (new)", 2, "minimal naive server"),
    ]  # fmt: skip
    for row in rows:
        assert row["rate"] > 0 and row["baseline_rate"] > 0 and row["cpu_per_item_ms"] > 0
        spread = row["ratio"]
        assert spread["min"] <= spread["median"] <= spread["max"]
    rounds = [s for s in err.splitlines() if "commands: 64 conn, paid, round" in s]
    assert len(rounds) == 2


async def test_the_bench_deletes_its_keys_from_a_lent_redis_and_only_those(
    stack: EmbeddedStack,
) -> None:
    run = uuid.uuid4().hex[:6]
    client = aioredis.Redis.from_url(stack.urls.redis_url)
    try:
        mine = [f"bench-{run}.abc:mark:{{order:o-{i}}}" for i in range(3)]
        mine.append(f"bench-{run}.bench-baseline:order:b-1")
        other = f"bench-{run}x.keep"
        for key in [*mine, other]:
            await client.set(key, "1", ex=60)
        settings = Settings.from_env({"EVENTFLEET_REDIS_URL": stack.urls.redis_url})
        await forget_keys(settings, f"bench-{run}.")
        assert [await client.exists(key) for key in mine] == [0] * len(mine)
        assert await client.exists(other) == 1
    finally:
        await client.delete(other)
        await client.aclose()


async def test_a_terminated_bench_stops_what_it_started_and_removes_its_directory(
    tmp_path: Path,
) -> None:
    """SIGTERM (a CI timeout, `kill`) runs the cleanup Ctrl-C runs: no broker, store or
    worker process of its own is left, and its run directory is gone.

    It is terminated while a measured process of its own runs: a child left behind kept
    working against the stopped broker and held the bench's stderr open (minutes in CI)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    env = {**clean, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "bench", "append", "--events", "4000",
        env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stderr is not None
    said = b""
    async with asyncio.timeout(120):  # until its stack and a worker process run
        while b"append round 1 of" not in said:
            line = await process.stderr.readline()
            assert line, said.decode()
            said += line
    # Terminated while it measures: the round's first side runs as a process of its own.
    for _ in range(2400):  # within 120 s
        if any(b"bench.baseline" in cmdline(pid) for pid in children_of(process.pid)):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the bench's first measured process did not start within 120 s")
    started = children_of(process.pid)
    process.terminate()
    await within(process.communicate(), timeout_s=60, what="the terminated bench to exit")
    assert process.returncode != 0
    assert [pid for pid in started if alive(pid)] == []
    assert leftovers(tmp_path) == []


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), whatever session it was started in."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, p in parents.items() if p == parent]
        found += kids
        frontier += kids
    return found


def cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
