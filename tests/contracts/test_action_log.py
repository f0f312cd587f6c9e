"""The ActionLog contract: the operator audit trail, newest first, idempotent, payloads as sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from topics.errors import StoreUnavailable
from workers.ports import OperatorAction

from .conftest import Stores

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


async def test_actions_read_back_newest_first_and_each_once(stores: Stores) -> None:
    log = stores.actions
    assert await log.recent(limit=10) == []
    for n in (1, 3, 2):
        await log.record(action(n))
    await log.record(action(1, operator="mallory"))  # the same id: the first one stays
    recent = await log.recent(limit=10)
    assert [a.id for a in recent] == ["a-3", "a-2", "a-1"]
    assert recent[2] == action(1)  # payload keys MongoDB treats specially come back as sent
    assert [a.id for a in await log.recent(limit=2)] == ["a-3", "a-2"]


async def test_the_trail_is_unavailable_while_the_store_is_down(stores: Stores) -> None:
    async with stores.outage() as down:
        with pytest.raises(StoreUnavailable):
            await down.actions.record(action(1))
        with pytest.raises(StoreUnavailable):
            await down.actions.recent(limit=1)
