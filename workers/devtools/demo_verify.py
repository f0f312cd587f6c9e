"""The demo's proof: the store, views and downstream topics agree with what was accepted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer

from topics.envelope import decode
from workers.devtools.demo_client import DemoClient, Tally
from workers.runtime.fleet import Fleet

Aggregate = tuple[str, str]
CATCH_UP_S = 60.0


def compare_histories(
    accepted: Mapping[Aggregate, Sequence[str]],
    found: Mapping[Aggregate, Sequence[tuple[str, int]]],
    *,
    where: str,
) -> list[str]:
    """Every accepted event exactly once, in versions 1..n; nothing else. Pure, so it is tested alone."""
    problems = []
    for aggregate, ids in sorted(accepted.items()):
        history = found.get(aggregate, [])
        found_ids = [event_id for event_id, _ in history]
        missing = set(ids) - set(found_ids)
        extra = [i for i in found_ids if i not in set(ids)]
        doubled = len(found_ids) - len(set(found_ids))
        versions = [version for _, version in history]
        name = f"{aggregate[0]} {aggregate[1]}"
        if missing:
            problems.append(f"{where}: {name} lacks {len(missing)} accepted event(s)")
        if extra:
            problems.append(f"{where}: {name} holds {len(extra)} event(s) nobody accepted")
        if doubled:
            problems.append(f"{where}: {name} holds {doubled} duplicate(s)")
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"{where}: {name} versions are {versions}, not 1..{len(versions)}")
    return problems


async def _until(check: Any, timeout_s: float) -> Any:
    """Poll ``check()`` (returning a problem list) until it is empty or time is up; return the last."""
    deadline = time.monotonic() + timeout_s
    while True:
        problems = await check()
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(0.2)


async def verify(
    fleet: Fleet, client: DemoClient, tally: Tally, rooms: Sequence[str]
) -> tuple[list[str], dict[str, Any]]:
    rt = fleet.runtime
    accepted = tally.accepted

    async def store_histories() -> dict[Aggregate, list[tuple[str, int]]]:
        reads = await asyncio.gather(*(rt.events.read(aggregate) for aggregate in accepted))
        return {
            a: [(e.id, e.version or 0) for e in events]
            for a, events in zip(accepted, reads, strict=True)
        }

    async def store_check() -> list[str]:
        return compare_histories(accepted, await store_histories(), where="store")

    problems: list[str] = await _until(store_check, CATCH_UP_S)
    stored = await store_histories()
    facts: dict[str, Any] = {"events stored": sum(len(h) for h in stored.values())}

    for account, balance in sorted(tally.balances.items()):
        status, body = await client.get(f"/v1/account/{account}/state")
        got = body.get("state", {}).get("balance") if status == 200 else None
        if got != balance or balance < 0:
            problems.append(f"account {account}: balance {got}, expected {balance} (never below 0)")

    terminal = [a for a in accepted if a[0] == "order"]

    async def snapshot_check() -> list[str]:
        loaded = await rt.snapshots.load_many(terminal)
        missing = []
        for aggregate in terminal:
            last_type = None
            history = stored.get(aggregate) or []
            if history:
                events = await rt.events.read(aggregate, after_version=len(history) - 1)
                last_type = events[-1].type if events else None
            if last_type in ("OrderDelivered", "OrderCancelled"):
                snap = loaded.get(aggregate)
                if snap is None or snap.version != len(history):
                    missing.append(
                        f"snapshots: order {aggregate[1]} has no snapshot at its final version"
                    )
        return missing

    problems += await _until(snapshot_check, CATCH_UP_S)
    snapshots = await rt.snapshots.load_many(list(accepted))
    facts["snapshots"] = len(snapshots)

    downstream: dict[str, set[str]] = {}
    for aggregate_type in sorted({a[0] for a in accepted}):
        domain = rt.domains.get(aggregate_type)
        for route in domain.routes:
            downstream.setdefault(rt.names.name(route.topic), set()).add(aggregate_type)
    forwarded = 0
    for topic, types in sorted(downstream.items()):
        expected = {a: ids for a, ids in accepted.items() if a[0] in types}
        found = await read_histories(rt.settings.kafka_bootstrap, topic, expected)
        forwarded += sum(len(h) for h in found.values())
        problems += compare_histories(expected, found, where=f"topic {topic}")
    facts["downstream events"] = forwarded

    if rooms:
        problems += await _until(lambda: _chat_check(client, rooms), CATCH_UP_S)
        lag = rt.metrics.projection_lag
        facts["projection lag"] = int(sum(s.value for m in lag.collect() for s in m.samples))
    return problems, facts


async def _chat_check(client: DemoClient, rooms: Iterable[str]) -> list[str]:
    problems = []
    for room in rooms:
        view_status, view = await client.get(f"/v1/rooms/{room}/messages?limit=100")
        replay_status, replayed = await client.get(
            f"/v1/rooms/{room}/messages?limit=100&source=replay"
        )
        if (view_status, replay_status) != (200, 200) or view["messages"] != replayed["messages"]:
            problems.append(f"chat room {room}: the view and the replay disagree")
    return problems


async def read_histories(
    bootstrap: list[str], topic: str, expected: Mapping[Aggregate, Sequence[str]]
) -> dict[Aggregate, list[tuple[str, int]]]:
    """Read ``topic`` from the start until every expected event arrived (or time is up)."""
    want = sum(len(ids) for ids in expected.values())
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    found: dict[Aggregate, list[tuple[str, int]]] = {}
    try:
        deadline = time.monotonic() + CATCH_UP_S
        seen = 0
        while seen < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode(record.value)
                    aggregate = (event.aggregate_type, event.aggregate_id)
                    if aggregate in expected:
                        found.setdefault(aggregate, []).append((event.id, event.version or 0))
                        seen += 1
    finally:
        await consumer.stop()
    return found


def summary(
    tally: Tally,
    facts: Mapping[str, Any],
    elapsed_s: float,
    *,
    p50_ms: float,
    p99_ms: float,
    problems: Sequence[str],
) -> str:
    rows = [("requests", str(tally.done))]
    rows += [(f"  {outcome}", str(count)) for outcome, count in sorted(tally.outcomes.items())]
    rows += [(name, str(value)) for name, value in facts.items()]
    rows += [
        ("command latency p50 / p99", f"{p50_ms:.1f} ms / {p99_ms:.1f} ms"),
        ("duration", f"{elapsed_s:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows) + 2
    lines = ["", "demo summary", "-" * (width + 16)]
    lines += [f"{name:<{width}}{value:>16}" for name, value in rows]
    lines.append("-" * (width + 16))
    if problems:
        lines += ["VERIFICATION FAILED:"] + [f"  - {p}" for p in problems]
    else:
        lines.append(
            "verified: the store, snapshots, views and downstream topics match every accepted request"
        )
    return "\n".join(lines)
