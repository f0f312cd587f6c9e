"""Write budgets in the command side, on memory adapters (issue 46).

Whose budget is which (a principal's own, else its roles' largest, else the default), the form
of the settings' tables, a refusal remembered until its bucket has a write (later writes refused
without the bucket, held a moment first), the refusals counter's bounded principal label, the
per-process fallback while the buckets' backend is away, and the dispatcher's answer: 429
``too_many_writes``, nothing produced, marked or claimed.
"""

from __future__ import annotations

import asyncio

import pytest

from snapshot_rules.domain import Domains
from tests.clock import Clock
from tests.orders import ITEMS
from tests.roles.command_side import command_side
from tests.waiting import wait_for
from topics.envelope import Actor, command_scope
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
    MemoryWriteBudgets,
)
from workers.examples.domains.order import ORDER
from workers.metrics import PRINCIPAL_LABELS, Metrics, create_metrics
from workers.ports import Budget, BudgetDraw, budget_table
from workers.roles.command import budget as budget_module
from workers.roles.command.budget import BudgetPolicy, WriteBudget
from workers.roles.command.requests import CommandRequest
from workers.runtime.answers import answer_of


def test_a_principals_own_budget_wins_then_its_roles_largest_then_the_default() -> None:
    policy = BudgetPolicy.parse(
        200, 400, principals="ann=5/10,free=0", roles="big=1000/2000,bigger=1000/3000,open=0"
    )
    assert policy.of(Actor("ann", ("open",))) == Budget(5, 10)
    assert policy.of(Actor("free", ())) is None
    assert policy.of(Actor("bob", ("big", "bigger"))) == Budget(1000, 3000)
    assert policy.of(Actor("cy", ("big", "open"))) is None  # no budget is the largest
    assert policy.of(Actor("dee", ("other",))) == Budget(200, 400)
    assert BudgetPolicy.parse(0, 1, principals="", roles="").of(Actor("eve", ())) is None


def test_a_budget_table_reads_its_one_form_and_names_a_bad_entry() -> None:
    assert budget_table(" a=5 , b@x.org=7/9,c=0,, ") == {
        "a": Budget(5, 10), "b@x.org": Budget(7, 9), "c": None,
    }  # fmt: skip
    assert budget_table("") == {}
    for raw, words in (
        ("a", "'a' is not name=rate or name=rate/burst"),
        ("a=fast", "is not name=rate"),
        ("=5", "is not name=rate"),
        ("a=5/", "is not name=rate"),
        ("a=-1", "is not name=rate"),
        ("a=5,a=6", "'a' is named twice"),
        ("a=5/0", "has a burst of 0"),
    ):
        with pytest.raises(ValueError, match=words):
            budget_table(raw)


def budget(
    clock: Clock, budgets: MemoryWriteBudgets | None = None, metrics: Metrics | None = None
) -> WriteBudget:
    return WriteBudget(
        policy=BudgetPolicy.parse(1, 2, principals="", roles=""),
        budgets=budgets or MemoryWriteBudgets(clock),
        metrics=metrics or create_metrics(),
        recheck_s=0.01,
        clock=clock,
    )


def test_a_refusal_is_remembered_until_the_bucket_has_a_write() -> None:
    clock = Clock()
    budgets = budget(clock)
    ann = budgets.draw(Actor("ann"))
    assert ann == BudgetDraw("ann", Budget(1, 2)) and budgets.draw(None) is None
    refused = budgets.refuse(ann, 400)
    assert refused.code == "too_many_writes" and refused.details["retry_after_s"] == 1
    clock.now += 0.3
    known = budgets.known_refusal(ann)
    assert known is not None and known.details["retry_after_s"] == 1
    assert budgets.known_refusal(BudgetDraw("bob", Budget(1, 2))) is None
    clock.now += 0.1
    assert budgets.known_refusal(ann) is None  # due now: the bucket is asked again


async def test_a_write_refused_without_the_bucket_is_held_a_moment_and_at_most_so_many() -> None:
    budgets = budget(Clock())
    ann = BudgetDraw("ann", Budget(1, 2))
    budgets.refuse(ann, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await budgets.hold(ann)
    assert loop.time() - started >= budget_module.HOLD_S * 0.45  # held, not answered at once
    budget_module.MAX_HELD_PER_PRINCIPAL, before = 2, budget_module.MAX_HELD_PER_PRINCIPAL
    try:
        held = [asyncio.create_task(budgets.hold(ann)) for _ in range(2)]
        await asyncio.sleep(0)  # both are held now
        started = loop.time()
        await budgets.hold(ann)  # a third: answered at once
        assert loop.time() - started < budget_module.HOLD_S / 2
        await asyncio.gather(*held)
    finally:
        budget_module.MAX_HELD_PER_PRINCIPAL = before


def test_the_refusals_counter_names_a_bounded_number_of_principals() -> None:
    metrics = create_metrics()
    budgets = budget(Clock(), metrics=metrics)
    for n in range(PRINCIPAL_LABELS + 5):
        budgets.refuse(BudgetDraw(f"p{n}", Budget(1, 1)), 1000)
    text = "\n".join(
        f"{s.labels['principal']} {s.value}"
        for m in metrics.write_budget_refusals.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert text.count("\n") + 1 == PRINCIPAL_LABELS + 1
    assert "other 5.0" in text and "p0 1.0" in text


async def test_while_the_backend_is_away_the_process_judges_with_its_own_bucket() -> None:
    clock, metrics = Clock(), create_metrics()
    shared = MemoryWriteBudgets(clock)
    budgets = budget(clock, shared, metrics)
    ann = BudgetDraw("ann", Budget(1, 2))
    assert await budgets.take(ann) is None
    shared.down()
    answers = [await budgets.take(ann) for _ in range(3)]  # a fresh local bucket: two pass
    assert [a is None for a in answers] == [True, True, False]
    assert budgets.judging_locally
    local = metrics.registry.get_sample_value
    assert local("eventfleet_write_budget_local_total", {"decision": "taken"}) == 2
    assert local("eventfleet_write_budget_local_total", {"decision": "refused"}) == 1
    shared.up()

    def back() -> bool:
        return not budgets.judging_locally

    await wait_for(back, timeout_s=5, what="the probe finding the backend again")
    clock.now += 10
    assert await budgets.take(ann) is None  # the shared bucket (1 left, refilled) again
    assert shared.faults.calls["take"] >= 3
    await budgets.close()


async def test_the_dispatcher_answers_429_and_produces_marks_and_claims_nothing() -> None:
    clock = Clock()
    metrics = create_metrics()
    marker = MemoryMarker(clock=clock)
    memory = MemoryCommandMemory(clock=clock, records=marker.records)
    producer = MemoryProducer(default_partitions=1)
    write_budget = WriteBudget(
        policy=BudgetPolicy.parse(1, 1, principals="", roles=""),
        budgets=marker.budgets,
        metrics=metrics,
        clock=clock,
    )
    service = command_side(
        domains=Domains([ORDER]), marker=marker, memory=memory, store=MemoryEventStore(),
        rejections=MemoryRejections(), producer=producer,
        progress=MemoryAppendProgress(producer, "t.events"), events_topic="t.events",
        metrics=metrics, budget=write_budget,
    )  # fmt: skip
    ann = Actor("ann")

    async def place(order: str) -> tuple[int, dict[str, object]]:
        request = CommandRequest("order", order, "OrderPlaced", ITEMS, command_id="c", actor=ann)
        answer = answer_of(await service.handle(request))
        return answer.status, dict(answer.body)

    assert (await place("o1"))[0] == 202
    status, body = await place("o2")  # refused by the bucket, in the marker's call
    assert (status, body["error"], body["retry_after_s"]) == (429, "too_many_writes", 1)
    status, _ = await place("o3")  # refused here, held a moment, the bucket not asked
    assert status == 429
    assert len(producer.records("t.events")) == 1
    assert marker.value("order:o2") == "" and marker.value("order:o3") == ""
    scoped = command_scope("c", ann)
    assert await memory.recall("order:o2", scoped) is None
    assert await memory.recall_refusal("order:o2", scoped) is None  # not remembered
    clock.now += 1
    assert (await place("o4"))[0] == 202
