"""The demo's proof: the store, views and downstream topics agree with what was accepted."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from snapshot_rules.process import PRINCIPAL_PREFIX
from topics.jsonvalue import Json, JsonObject
from workers.examples.demo.client import DemoClient, Tally
from workers.examples.demo.processes import PROCESS, process_facts, process_problems
from workers.runtime.audit import auditor
from workers.runtime.fleet import Fleet

Aggregate = tuple[str, str]
CATCH_UP_S = 60.0


def compare_histories(
    accepted: Mapping[Aggregate, Sequence[str]],
    found: Mapping[Aggregate, Sequence[tuple[str, int]]],
    *,
    where: str,
) -> list[str]:
    """Every accepted event exactly once, in versions 1..n; nothing else. Pure, so it is tested
    alone."""
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


async def _until(
    check: Callable[[], Awaitable[list[str]]], timeout_s: float, *, what: str
) -> list[str]:
    """Poll ``check()`` (a problem list) until it is empty or time is up; return the last.

    One line on stderr per step (what it checks, how it ended, how long it took), redrawn at
    least every second while it waits, so a slow machine is never silent.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    said = 0.0
    while True:
        problems = await check()
        took = time.monotonic() - started
        if not problems or time.monotonic() > deadline:
            verdict = "ok" if not problems else f"{len(problems)} problem(s) left"
            print(
                f"\r  verifying {what}: {verdict} ({took:.1f} s)" + " " * 20,
                file=sys.stderr,
                flush=True,
            )
            return problems
        if time.monotonic() - said >= 1.0:
            left = max(0, int(deadline - time.monotonic()))
            print(
                f"\r  verifying {what}: waiting ({len(problems)} to go, {left} s left)   ",
                end="",
                file=sys.stderr,
                flush=True,
            )
            said = time.monotonic()
        await asyncio.sleep(0.2)


async def verify(
    fleet: Fleet, client: DemoClient, tally: Tally, rooms: Sequence[str]
) -> tuple[list[str], JsonObject]:
    """Wait (bounded, with progress) until the pipeline caught up, then check and audit it."""
    rt = fleet.runtime
    accepted = tally.accepted
    refused: set[str] = set()

    async def store_histories() -> dict[Aggregate, list[tuple[str, int]]]:
        reads = await asyncio.gather(*(rt.events.select(aggregate) for aggregate in accepted))
        return {
            a: [(e.id, e.version or 0) for e in events]
            for a, events in zip(accepted, reads, strict=True)
        }

    async def store_check() -> list[str]:
        found = await store_histories()
        have = {event_id for history in found.values() for event_id, _ in history}
        missing = [i for ids in accepted.values() for i in ids if i not in have]
        if missing:  # accepted early, then refused by the store (the judge): not lost
            refused.update(await _refused(fleet, missing))
        expected = {a: [i for i in ids if i not in refused] for a, ids in accepted.items()}
        for a, ids in (await _sent_by_managers(fleet, list(accepted))).items():
            expected[a] = [*expected[a], *ids]  # the process manager's own commands
        return compare_histories(expected, found, where="store")

    problems: list[str] = await _until(store_check, CATCH_UP_S, what="the store")
    orders = [a[1] for a in accepted if a[0] == "order"]
    managed = PROCESS in rt.processes
    if managed:
        problems += await _until(
            lambda: process_problems(rt, orders),
            CATCH_UP_S,
            what="the process manager (deadlines, shipments)",
        )
        problems += await _until(store_check, CATCH_UP_S, what="the store, with its commands")
    stored = await store_histories()
    facts: JsonObject = {"events stored": sum(len(h) for h in stored.values())}
    if managed:
        facts.update(await process_facts(rt, orders))
    if refused:
        facts["accepted, refused by the store"] = len(refused)
    problems += await _until(lambda: _balances(client, tally), 0, what="account balances")
    problems += await _until(lambda: _final_snapshots(fleet, stored), CATCH_UP_S, what="snapshots")
    facts["snapshots"] = len(await rt.snapshots.load_many(list(accepted)))
    if rooms:
        problems += await _until(lambda: _chat_check(client, rooms), CATCH_UP_S, what="chat views")
        lag = rt.metrics.projection_lag
        facts["projection lag"] = int(sum(s.value for m in lag.collect() for s in m.samples))

    checker = await auditor(rt, topics=True, marks=True, mark_bound_s=2.0)
    audited = [
        *accepted,
        *(("shipment", o) for o in orders if managed and "shipment" in rt.domains),
    ]

    async def audit_check() -> list[str]:
        report = await checker.audit(refs=audited)
        return [
            f"{f.kind}: {f.aggregate_type} {f.aggregate_id}: {f.detail}"
            for f in report.findings
            if f.error
        ]

    problems += await _until(audit_check, CATCH_UP_S, what="the audit of stores and topics")
    report = await checker.audit(refs=audited)
    facts["downstream events"] = sum(
        len(h) for a, h in stored.items() if rt.domains.get(a[0]).routes
    )
    facts["audited"] = ", ".join(f"{n} {what}" for what, n in sorted(report.checked.items()))
    doubles = [f for f in report.findings if not f.error]
    if doubles:
        facts["doubled on a topic (at-least-once)"] = len(doubles)
    return problems, facts


async def _balances(client: DemoClient, tally: Tally) -> list[str]:
    problems = []
    for account, balance in sorted(tally.balances.items()):
        status, body = await client.get(f"/v1/account/{account}/state")
        got = body.get("state", {}).get("balance") if status == 200 else None
        if got != balance or balance < 0:
            problems.append(f"account {account}: balance {got}, expected {balance} (never below 0)")
    return problems


async def _final_snapshots(
    fleet: Fleet, stored: Mapping[Aggregate, Sequence[tuple[str, int]]]
) -> list[str]:
    """Orders that ended (delivered or cancelled) have a snapshot at their final version."""
    rt = fleet.runtime
    orders = [a for a in stored if a[0] == "order" and stored[a]]
    loaded = await rt.snapshots.load_many(orders)
    missing = []
    for aggregate in orders:
        history = stored[aggregate]
        last = await rt.events.select(aggregate, after=len(history) - 1)
        if last and last[-1].type in ("OrderDelivered", "OrderCancelled"):
            snap = loaded.get(aggregate)
            if snap is None or snap.version != len(history):
                missing.append(
                    f"snapshots: order {aggregate[1]} has no snapshot at its final version"
                )
    return missing


async def _sent_by_managers(
    fleet: Fleet, aggregates: list[Aggregate]
) -> dict[Aggregate, list[str]]:
    """The events process managers sent to ``aggregates`` (their principal is ``pm:<name>``)."""
    reads = await asyncio.gather(*(fleet.runtime.events.select(a) for a in aggregates))
    found: dict[Aggregate, list[str]] = {}
    for aggregate, events in zip(aggregates, reads, strict=True):
        for event in events:
            actor = event.metadata.actor
            if actor is not None and actor.principal.startswith(PRINCIPAL_PREFIX):
                found.setdefault(aggregate, []).append(event.id)
    return found


async def _refused(fleet: Fleet, event_ids: list[str]) -> set[str]:
    """The event ids among ``event_ids`` that the store refused (recorded by the appender)."""
    return set(await fleet.runtime.stores.rejections.find(event_ids))


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


def summary(
    tally: Tally,
    facts: Mapping[str, Json],
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
            "verified: the store, snapshots, views and downstream topics match every accepted "
            "request, and the process manager did what each order asked, once"
        )
    return "\n".join(lines)
