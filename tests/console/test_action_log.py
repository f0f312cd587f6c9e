"""The operator audit trail (on the embedded MongoDB, and its in-memory twin): newest first,
idempotent, payloads as sent; each dead letter's first replay claimed once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from workers.adapters.memory import MemoryActionLog
from workers.adapters.mongo import ACTIONS, MongoActionLog, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.ports import ActionLog, OperatorAction, ReplayClaim

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def action(n: int, **changes: object) -> OperatorAction:
    fields: dict[str, object] = {
        "id": f"a-{n}", "at": T0 + timedelta(seconds=n), "operator": "alice", "via": "console",
        "action": "dlq_replay", "target": f"0/{n}", "status": 202,
        "submitted": {"aggregate_type": "order", "aggregate_id": "o", "type": "OrderPlaced",
                      "data": {"$where": 1, "a.b": [1, 2]}, "command_id": f"dlq-replay:{n}"},
        "result": {"event_id": f"e-{n}"},
    }  # fmt: skip
    fields.update(changes)
    return OperatorAction(**fields)  # type: ignore[arg-type]


async def test_actions_read_back_newest_first_and_each_once(
    stack: EmbeddedStack, unique_name: str
) -> None:
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        db = database(client, unique_name)
        log = MongoActionLog(db)
        assert await log.recent(limit=10) == []
        for n in (1, 3, 2):
            await log.record(action(n))
        await log.record(action(1, operator="mallory"))  # the same id: the first one stays
        recent = await log.recent(limit=10)
        assert [a.id for a in recent] == ["a-3", "a-2", "a-1"]
        assert recent[2] == action(1)  # payload keys MongoDB treats specially come back as sent
        assert [a.id for a in await log.recent(limit=2)] == ["a-3", "a-2"]
        assert await db[ACTIONS].count_documents({}) == 3
    finally:
        await client.close()


@pytest.fixture(params=["memory", "mongo"])
async def log(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[ActionLog]:
    if request.param == "memory":
        yield MemoryActionLog()
        return
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        yield MongoActionLog(database(client, unique_name))
    finally:
        await client.close()


async def test_the_first_replay_of_an_entry_is_claimed_once_and_kept_with_its_answer(
    log: ActionLog,
) -> None:
    submitted = {"aggregate_type": "order", "aggregate_id": "o", "type": "OrderPlaced",
                 "data": {"$where": 1}, "command_id": "dlq-replay:e1"}  # fmt: skip
    first = ReplayClaim("0/7", submitted, "alice", T0)
    assert await log.claim_replay(first) is None
    assert await asyncio.gather(
        log.claim_replay(ReplayClaim("0/7", {**submitted, "aggregate_id": "x"}, "bob", T0)),
        log.claim_replay(ReplayClaim("0/7", submitted, "carol", T0)),
    ) == [first, first]
    await log.settle_replay("0/7", 202, {"event_id": "e1"})
    told = await log.claim_replay(ReplayClaim("0/7", submitted, "dan", T0))
    assert told is not None and (told.operator, told.status, told.result) == (
        "alice", 202, {"event_id": "e1"},
    )  # fmt: skip
    assert await log.claim_replay(ReplayClaim("0/8", submitted, "erin", T0)) is None


async def test_an_abandoned_replay_frees_its_entry_and_only_its_own_claim_is_removed(
    log: ActionLog,
) -> None:
    submitted = {"type": "OrderPlaced", "data": {}}
    refused = ReplayClaim("1/1", submitted, "alice", T0)
    await log.claim_replay(refused)
    await log.abandon_replay(ReplayClaim("1/1", submitted, "mallory", T0))  # not the holder
    assert await log.claim_replay(ReplayClaim("1/1", submitted, "bob", T0)) == refused
    await log.abandon_replay(refused)
    corrected = ReplayClaim("1/1", {**submitted, "data": {"fixed": True}}, "bob", T0)
    assert await log.claim_replay(corrected) is None
