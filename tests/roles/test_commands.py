"""The command side on memory adapters: true answers, safe retries, bounded claims and marks."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from snapshot_rules.domain import Domains
from topics.envelope import NEW_AGGREGATE, decode, derived_event_id, new_event, utc_now
from topics.errors import StoreOutcomeUnknown, StreamOutcomeUnknown
from workers.adapters.memory import (
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
    MemorySnapshotStore,
)
from workers.cqrs.repository import Repository
from workers.cqrs.sync import SyncCommands
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.metrics import create_metrics
from workers.ports import Record, Rejection
from workers.roles.commands import CommandService, Outcomes
from workers.roles.newfilter import rebuild_filter
from workers.roles.outbox import Outbox
from workers.roles.requests import Answer, CommandRequest
from workers.roles.state import StateLoader

EVENTS, STORED = "t.events", "t.events.stored"
ITEMS = {"items": [{"sku": "tea", "qty": 1, "price": 2}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Side:
    """A command service on memory adapters, as one commands process has it."""

    service: CommandService
    outcomes: Outcomes
    store: MemoryEventStore
    producer: MemoryProducer
    marker: MemoryMarker
    memory: MemoryCommandMemory
    rejections: MemoryRejections
    clock: Clock

    async def ask(self, aggregate: str, kind: str, data: object, **kw: str) -> Answer:
        kind_type, aggregate_id = aggregate.split(":")
        request = CommandRequest(kind_type, aggregate_id, kind, data, **kw)  # type: ignore[arg-type]
        return await self.service.handle(request)

    def produced(self) -> list[tuple[str, str | None]]:
        return [(decode(r.value).id, decode(r.value).after) for r in self.producer.records(EVENTS)]


@pytest.fixture
def side() -> Side:
    clock = Clock()
    metrics = create_metrics()
    store, producer = MemoryEventStore(), MemoryProducer(default_partitions=1)
    marker, memory = MemoryMarker(clock=clock), MemoryCommandMemory(clock=clock)
    rejections = MemoryRejections()
    loader = StateLoader(store, MemorySnapshotStore(), metrics)
    outbox = Outbox(store, producer, topic=STORED, metrics=metrics, mode="sync")
    sync = SyncCommands(repository=Repository(loader), outbox=outbox, metrics=metrics)
    domains = Domains([ORDER, ACCOUNT])
    service = CommandService(
        domains=domains,
        marker=marker,
        memory=memory,
        store=store,
        rejections=rejections,
        producer=producer,
        events_topic=EVENTS,
        metrics=metrics,
        sync=sync,
        answer_wait_s=0.2,
    )
    outcomes = Outcomes(domains=domains, store=store, rejections=rejections, memory=memory)
    return Side(service, outcomes, store, producer, marker, memory, rejections, clock)


async def test_an_accepted_event_carries_the_id_it_was_validated_after(side: Side) -> None:
    placed = await side.ask("order:o1", "OrderPlaced", ITEMS)
    paid = await side.ask("order:o1", "OrderPaid", {"amount": 2})
    assert (placed.status, paid.status) == (202, 202)
    assert side.produced() == [
        (placed.body["event_id"], NEW_AGGREGATE),
        (paid.body["event_id"], placed.body["event_id"]),
    ]


async def test_a_produce_without_an_answer_is_outcome_unknown_and_the_retry_is_the_same_event(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    side.producer.fail_next(1, StreamOutcomeUnknown("Kafka did not acknowledge in time."))
    first = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert (first.status, first.body["error"]) == (503, "outcome_unknown")
    expected_id = derived_event_id("order", "o1", "pay-1")
    assert first.body["event_id"] == expected_id
    assert "nothing was written" not in first.body["message"].lower()
    assert (await side.memory.recall("order:o1", "pay-1")).state == "unknown"  # type: ignore[union-attr]
    retry = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert retry.status == 202 and retry.body["event_id"] == expected_id
    # Whatever the broker did with the first attempt, both copies are one event: one id.
    assert {event_id for event_id, _ in side.produced()[1:]} == {expected_id}


async def test_nothing_sent_is_503_unavailable_and_leaves_no_trace(side: Side) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    side.producer.fail_next(1)
    failed = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert (failed.status, failed.body["error"]) == (503, "stream_unavailable")
    assert "Nothing was written" in failed.body["message"]
    assert await side.memory.recall("order:o1", "pay-1") is None  # the claim was released
    again = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert again.status == 202  # the mark was restored: OrderPaid is allowed again


async def test_a_retry_after_an_unknown_outcome_that_was_stored_answers_stored(side: Side) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    side.producer.fail_next(1, StreamOutcomeUnknown("no answer"))
    await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    # The broker appended it after all and the appender stored it; the mark expired meanwhile.
    paid_id = derived_event_id("order", "o1", "pay-1")
    placed = decode(side.producer.records(EVENTS)[0].value)
    paid = new_event("order", "o1", "OrderPaid", {"amount": 2}, id=paid_id, after=placed.id)
    await side.store.append([placed.with_version(1), paid.with_version(2)])
    side.clock.now += 3600
    retry = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert retry.status == 202 and retry.body == {
        "event_id": paid_id,
        "version": 2,
        "duplicate": True,
    }


async def test_a_retry_refused_by_the_marker_while_the_first_may_land_stays_unknown(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    placed = decode(side.producer.records(EVENTS)[0].value)
    await side.store.append([placed.with_version(1)])  # what the appender did
    side.producer.fail_next(1, StreamOutcomeUnknown("no answer"))
    await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    side.clock.now += 3600  # the tentative mark expired: the store is asked
    cancelled = await side.ask("order:o1", "OrderCancelled", {"reason": "x"})
    assert cancelled.status == 202
    retry = await side.ask("order:o1", "OrderPaid", {"amount": 2}, command_id="pay-1")
    assert (retry.status, retry.body["error"]) == (503, "outcome_unknown")


async def test_a_store_refusal_is_the_answer_of_a_later_retry_and_of_the_outcome(
    side: Side,
) -> None:
    await side.ask("order:o1", "OrderPlaced", ITEMS)
    shipped_id = derived_event_id("order", "o1", "ship-1")
    await side.rejections.record(
        [Rejection(shipped_id, "order", "o1", "OrderShipped", "transition_rejected_at_store",
                   "OrderShipped may not follow OrderPlaced", "ship-1", utc_now())]
    )  # fmt: skip
    retry = await side.ask("order:o1", "OrderShipped", {"carrier": "dhl"}, command_id="ship-1")
    assert (retry.status, retry.body["error"]) == (409, "transition_rejected_at_store")
    outcome = await side.outcomes.ask("order", "o1", command_id="ship-1")
    assert (outcome.status, outcome.body["outcome"]) == (200, "rejected")


async def test_a_pending_claim_waits_for_the_first_answer_then_gives_up_within_its_bound(
    side: Side,
) -> None:
    event_id = derived_event_id("order", "o1", "c-1")
    assert await side.memory.claim("order:o1", "c-1", event_id) is None  # someone else holds it
    busy = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="c-1")
    assert (busy.status, busy.body["error"]) == (409, "command_in_progress")
    side.clock.now += 3600  # the holder died: its claim is bounded
    assert (await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="c-1")).status == 202
    again = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="c-1")
    assert again.status == 202 and again.body["event_id"] == event_id  # the first answer


async def test_a_marker_that_is_down_is_503_and_releases_the_claim(side: Side) -> None:
    side.marker.down()
    answer = await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="c-9")
    assert (answer.status, answer.body["error"]) == (503, "marker_unavailable")
    assert await side.memory.recall("order:o1", "c-9") is None
    assert side.produced() == []


async def test_sync_retry_of_an_applied_withdrawal_that_would_now_overdraw_is_a_duplicate(
    side: Side,
) -> None:
    await side.ask("account:a1", "AccountOpened", {"owner": "ann"})
    await side.ask("account:a1", "MoneyDeposited", {"amount": 50})
    first = await side.ask("account:a1", "MoneyWithdrawn", {"amount": 40}, command_id="w-1")
    assert first.status == 201
    # The answer was lost (Redis): the memory forgets it, the client retries the same command.
    side.clock.now += 10 * 86_400
    retry = await side.ask("account:a1", "MoneyWithdrawn", {"amount": 40}, command_id="w-1")
    assert retry.status == 201 and retry.body["duplicate"] is True
    assert retry.body["event_id"] == first.body["event_id"]
    balance = [e for e in await side.store.read(("account", "a1")) if e.type == "MoneyWithdrawn"]
    assert len(balance) == 1


async def test_sync_store_write_without_an_answer_is_outcome_unknown(side: Side) -> None:
    await side.ask("account:a1", "AccountOpened", {"owner": "ann"})
    side.store.fail_next(
        1, StoreOutcomeUnknown("MongoDB did not answer; it may have applied it."), on="append"
    )
    answer = await side.ask("account:a1", "MoneyDeposited", {"amount": 5}, command_id="d-1")
    assert (answer.status, answer.body["error"]) == (503, "outcome_unknown")
    assert answer.body["event_id"] == derived_event_id("account", "a1", "d-1")
    retry = await side.ask("account:a1", "MoneyDeposited", {"amount": 5}, command_id="d-1")
    assert retry.status == 201
    deposits = [e for e in await side.store.read(("account", "a1")) if e.type == "MoneyDeposited"]
    assert len(deposits) == 1


async def test_sync_stored_but_not_acknowledged_by_kafka_is_a_201(side: Side) -> None:
    await side.ask("account:a1", "AccountOpened", {"owner": "ann"})
    side.producer.down()
    answer = await side.ask("account:a1", "MoneyDeposited", {"amount": 5})
    assert answer.status == 201 and answer.body["published"] is False
    side.producer.up()


async def test_numbers_beyond_64_bits_and_bad_input_write_nothing(side: Side) -> None:
    big = {"items": [{"sku": "tea", "qty": 2**63 - 1, "price": 2**63 - 1}]}
    answer = await side.ask("order:o1", "OrderPlaced", big)
    assert (answer.status, answer.body["error"]) == (422, "invalid_data")
    assert side.produced() == []


async def test_the_outcome_of_what_was_never_seen_is_404_and_one_id_is_required(side: Side) -> None:
    missing = await side.outcomes.ask("order", "o1", command_id="never")
    assert (missing.status, missing.body["outcome"]) == (404, "none")
    with pytest.raises(Exception, match="exactly one of"):
        await side.outcomes.ask("order", "o1")
    await side.ask("order:o1", "OrderPlaced", ITEMS, command_id="p-1")
    accepted = await side.outcomes.ask("order", "o1", command_id="p-1")
    assert accepted.body["outcome"] == "accepted"
    body = orjson.loads(orjson.dumps(accepted.body))
    assert body["event_id"] == derived_event_id("order", "o1", "p-1")


async def test_a_ready_filter_spares_the_store_read_for_a_new_aggregate(side: Side) -> None:
    assert (await side.ask("order:o1", "OrderPlaced", ITEMS)).status == 202
    assert side.store.calls["last_event"] == 1  # no filter yet: the store was asked
    await rebuild_filter(side.marker, side.store, Domains([ORDER, ACCOUNT]))
    assert (await side.ask("order:o2", "OrderPlaced", ITEMS)).status == 202
    assert side.store.calls["last_event"] == 1  # certainly new: no read
    side.marker.lose_filter()  # Redis flushed: the filter is not ready, reads come back
    assert (await side.ask("order:o3", "OrderPlaced", ITEMS)).status == 202
    assert side.store.calls["last_event"] == 2


async def test_the_filter_is_rebuilt_from_the_store_and_knows_what_it_holds(side: Side) -> None:
    placed = decode((await _placed(side, "o1")).value)
    await side.store.append([placed.with_version(1)])  # what the appender stored
    assert await rebuild_filter(side.marker, side.store, Domains([ORDER, ACCOUNT])) == 1
    side.clock.now += 10 * 86_400  # every mark expired
    again = await side.ask("order:o1", "OrderPlaced", ITEMS)
    assert again.status == 409  # the filter said "exists": the store was asked, and refuses


async def _placed(side: Side, order: str) -> Record:
    await side.ask(f"order:{order}", "OrderPlaced", ITEMS)
    return side.producer.records(EVENTS)[-1]
