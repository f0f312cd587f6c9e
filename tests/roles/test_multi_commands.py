"""Appends across aggregates in the command side, on memory adapters: the principal's budget
gives one write per item at once, what each item is counted as, and the answers' shapes.

The same route on the real services is ``tests/e2e/test_multi_append.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from snapshot_rules.domain import Domains
from topics.envelope import Actor
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.roles.command.multi_requests import MultiRequest, parse_multi
from workers.roles.outcomes import Refused, StoredAll
from workers.runtime.adapters import memory_adapters
from workers.runtime.compose import Runtime
from workers.runtime.multi_answers import answer_of_all
from workers.runtime.settings import Settings

ANN = Actor("ann", ())


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    """A commands process whose principals may write one a second, three at once."""
    settings = Settings(topic_prefix="m.", kafka_timeout_ms=100, write_budget_per_s=1,
                        write_budget_burst=3)  # fmt: skip
    started = await Runtime.start(
        settings, roles=("commands",), domains=Domains([ACCOUNT, ORDER]),
        adapters=memory_adapters().adapters(),
    )  # fmt: skip
    yield started
    await started.stop()


def opening(
    *accounts: str, actor: Actor | None = ANN, command_id: str | None = None
) -> MultiRequest:
    body = {"appends": [{"aggregate_type": "account", "aggregate_id": a, "type": "AccountOpened",
                         "data": {"owner": "o"}} for a in accounts]}  # fmt: skip
    if command_id is not None:
        body["command_id"] = command_id  # type: ignore[assignment]
    return parse_multi(orjson.dumps(body), max_bytes=65536, max_items=10, actor=actor)


def counted(runtime: Runtime, outcome: str) -> float:
    value = runtime.metrics.registry.get_sample_value(
        "eventfleet_requests_total",
        {"aggregate_type": "account", "event_type": "AccountOpened", "outcome": outcome},
    )
    return value or 0.0


async def test_each_item_is_a_write_of_the_principals_budget_taken_at_once(
    runtime: Runtime,
) -> None:
    commands = runtime.commands
    over_burst = await commands.handle_many(opening("b1", "b2", "b3", "b4"))
    assert isinstance(over_burst, Refused) and over_burst.code == "bad_request"
    assert "names 4 events" in over_burst.message and "at most 3 at once" in over_burst.message
    stored = await commands.handle_many(opening("b1", "b2", "b3"))
    assert isinstance(stored, StoredAll) and len(stored.items) == 3
    spent = await commands.handle_many(opening("b4"))
    assert isinstance(spent, Refused) and spent.code == "too_many_writes"
    assert answer_of_all(spent).status == 429
    unbudgeted = await commands.handle_many(opening("b5", actor=None))  # no principal, no budget
    assert isinstance(unbudgeted, StoredAll)
    assert await runtime.events.select(("account", "b4")) == []


async def test_each_item_is_counted_with_the_whole_requests_outcome(runtime: Runtime) -> None:
    before = counted(runtime, "accepted")
    await runtime.commands.handle_many(opening("c1", "c2", actor=None, command_id="cmd-c"))
    assert counted(runtime, "accepted") == before + 2
    again = await runtime.commands.handle_many(opening("c1", "c2", actor=None, command_id="cmd-c"))
    assert isinstance(again, StoredAll) and again.duplicate
    assert counted(runtime, "duplicate") == 2


async def test_the_answers_say_what_was_stored_or_what_refused_it(runtime: Runtime) -> None:
    stored = await runtime.commands.handle_many(opening("d1", "d2", actor=None, command_id="cd"))
    answer = answer_of_all(stored)
    assert answer.status == 201 and answer.body["published"] is True
    assert [(e["aggregate_id"], e["version"]) for e in answer.body["events"]] == [  # type: ignore[index, union-attr]
        ("d1", 1), ("d2", 1),
    ]  # fmt: skip
    mixed = parse_multi(
        orjson.dumps({"appends": [
            {"aggregate_type": "account", "aggregate_id": "d3", "type": "AccountOpened",
             "data": {"owner": "o"}},
            {"aggregate_type": "order", "aggregate_id": "o1", "type": "OrderPlaced", "data": {}},
        ]}), max_bytes=65536, max_items=10,
    )  # fmt: skip
    refused = answer_of_all(await runtime.commands.handle_many(mixed))
    assert refused.status == 422 and refused.body["error"] == "async_domain"
    assert (refused.body["item"], refused.body["aggregate_id"]) == (1, "o1")
    assert await runtime.events.select(("account", "d3")) == []
