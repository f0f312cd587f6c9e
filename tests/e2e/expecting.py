"""Appends that expect a version, sent as a client sends them, and the checks of a race: what the
expected-version end-to-end tests share (``test_expected_version*.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.e2e.committed import decided_ids
from tests.fleet import FleetProcess
from tests.waiting import wait_for
from workers.adapters.mongo import connect, database
from workers.devtools.embedded import EmbeddedStack

ALL_DOMAINS = {"EVENTFLEET_DOMAINS": "workers.examples.domains:all_domains"}
"""The cart (async: ``ItemAdded`` may follow itself, so only the version decides a race) and
the account (sync: ``MoneyDeposited`` may follow anything)."""
ITEM = {"type": "ItemAdded", "data": {"sku": "tea", "qty": 1, "unit_price_cents": 250}}
DEPOSIT = {"type": "MoneyDeposited", "data": {"amount": 5}}
STALE = "wrong_expected_version"


@dataclass(frozen=True)
class Told:
    """The final answer one request got (after its retries with the same command id)."""

    command_id: str
    status: int
    body: dict[str, Any]


async def send(
    fleet: FleetProcess, path: str, body: dict[str, Any], *, attempts: int = 300
) -> Told:
    """Send ``body``; on a 503 (nothing written, or an unknown outcome) send it again with the
    same command id, as a client does, until an answer that is not "later"."""
    for _ in range(attempts):
        status, answer = await fleet.post(path, body)
        if status != 503:
            return Told(str(body.get("command_id")), status, answer)
        # A client's backoff between retries (``retry_after_s`` says 1 s; a test goes faster).
        await asyncio.sleep(0.2 if answer.get("error") == "store_catching_up" else 0.05)
    raise AssertionError(f"{body.get('command_id')} was answered 503 {attempts} times: {answer}")


async def race(
    fleets: Sequence[FleetProcess],
    path: str,
    body: dict[str, Any],
    *,
    expected: int,
    n: int,
    run: str,
) -> list[Told]:
    """``n`` appends of ``body`` that all expect ``expected``, each under its own command id,
    sent at once and spread over ``fleets``."""
    bodies = [{**body, "expected_version": expected, "command_id": f"{run}-{i}"} for i in range(n)]
    return list(
        await asyncio.gather(
            *(send(fleets[i % len(fleets)], path, b) for i, b in enumerate(bodies))
        )
    )


def refused_truly(told: Told, *, expected: int) -> bool:
    """A 409 for the stale expectation, naming a version past it (the race's winner's)."""
    body = told.body
    return (
        told.status == 409
        and body.get("error") == STALE
        and body.get("expected_version") == expected
        and body.get("current_version") == expected + 1
        and "read it again and decide again" in str(body.get("message"))
    )


async def stored_versions(
    stack: EmbeddedStack, db_name: str, aggregate_type: str, aggregate_id: str
) -> list[tuple[int, int | None, str]]:
    """The aggregate's stored (version, expected version, event id), in version order, read
    from MongoDB itself."""
    client = connect(stack.urls.mongo_url, timeout_ms=10_000)
    try:
        events = database(client, db_name)["events"]
        query = {"aggregate_type": aggregate_type, "aggregate_id": aggregate_id}
        return [
            (int(d["version"]), d.get("expected_version"), str(d["_id"]))
            async for d in events.find(query).sort("version", 1)
        ]
    finally:
        await client.close()


async def one_stored_per_round(
    stack: EmbeddedStack,
    db_name: str,
    fleet: FleetProcess,
    where: tuple[str, str],
    answers: list[Told],
    *,
    expected: int,
) -> str:
    """Judge an async round: every 202 is decided by the store, exactly one of them stored (at
    ``expected + 1``), each other refused at the store for its version; every 409 true.
    Returns the stored event's id."""
    assert all(t.status in (202, 409) for t in answers), answers
    accepted = {t.command_id: str(t.body["event_id"]) for t in answers if t.status == 202}
    assert accepted, answers
    await wait_for(
        lambda: _decided(stack, db_name, set(accepted.values())), timeout_s=60,
        what="every accepted event stored or refused by the store",
    )  # fmt: skip
    history = await stored_versions(stack, db_name, *where)
    ids = {event_id for _, _, event_id in history}
    winners = [c for c, event_id in accepted.items() if event_id in ids]
    assert len(winners) == 1, (winners, answers)
    assert (expected + 1, expected) in {(v, e) for v, e, _ in history}
    for command_id in accepted.keys() - set(winners):  # accepted, then refused at the store
        status, body = await fleet.get(f"/v1/{where[0]}/{where[1]}/outcome?command_id={command_id}")
        assert (status, body.get("outcome"), body.get("reason")) == (200, "rejected", STALE), body
    told_wrong = [t for t in answers if t.status == 409 and not refused_truly(t, expected=expected)]
    assert told_wrong == [], told_wrong
    return accepted[winners[0]]


async def _decided(stack: EmbeddedStack, db_name: str, ids: set[str]) -> bool:
    return ids <= await decided_ids(stack.urls.mongo_url, db_name)
