"""Unknown outcomes resolved from the log, on memory adapters: a produce answered unknown is
read back from the events topic once the producer's delivery bound has passed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from snapshot_rules.domain import Domains
from tests.clock import Clock
from tests.orders import ITEMS
from tests.roles.command_side import command_side
from topics.envelope import Metadata, derived_event_id, new_event
from topics.errors import StreamOutcomeUnknown, StreamUnavailable
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryLogProbe,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
)
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.metrics import Metrics, create_metrics
from workers.ports import Outgoing
from workers.roles.command.commands import CommandDispatcher
from workers.roles.command.requests import CommandRequest
from workers.roles.command.resolver import UnknownResolver
from workers.roles.outcomes import Outcomes
from workers.runtime.answers import Answer, answer_of

EVENTS = "t.events"
BOUND_S = 30.0


@dataclass
class Side:
    service: CommandDispatcher
    outcomes: Outcomes
    producer: MemoryProducer
    marker: MemoryMarker
    memory: MemoryCommandMemory
    store: MemoryEventStore
    metrics: Metrics
    clock: Clock

    async def ask(self, aggregate_id: str, kind: str, data: object, **kw: str) -> Answer:
        request = CommandRequest("order", aggregate_id, kind, data, **kw)  # type: ignore[arg-type]
        return answer_of(await self.service.handle(request))

    async def unanswered(self, aggregate_id: str, **kw: str) -> str:
        """An OrderPlaced whose produce is answered unknown: its event id."""
        self.producer.fail_next(1, StreamOutcomeUnknown("Kafka did not acknowledge in time."))
        answer = await self.ask(aggregate_id, "OrderPlaced", ITEMS, **kw)
        assert (answer.status, answer.body["error"]) == (503, "outcome_unknown"), answer
        return str(answer.body["event_id"])

    async def landed_late(self, aggregate_id: str, event_id: str, **kw: str) -> None:
        """What a thawed broker does with a request it held: the copy lands after the answer."""
        meta = Metadata(command_id=kw.get("command_id"))
        event = new_event("order", aggregate_id, "OrderPlaced", ITEMS, id=event_id, metadata=meta)
        await self.producer.send(EVENTS, Outgoing.of(event))

    def resolved(self, result: str) -> float:
        found = self.metrics.registry.get_sample_value(
            "eventfleet_unknowns_resolved_total", {"result": result}
        )
        return found or 0.0


@pytest.fixture
def side() -> Side:
    clock, metrics = Clock(), create_metrics()
    store, producer = MemoryEventStore(), MemoryProducer(default_partitions=3)
    marker = MemoryMarker(clock=clock)
    memory = MemoryCommandMemory(clock=clock, records=marker.records)
    rejections = MemoryRejections()
    domains = Domains([ORDER, ACCOUNT])
    service = command_side(
        domains=domains, marker=marker, memory=memory, store=store,
        rejections=rejections, producer=producer,
        progress=MemoryAppendProgress(producer, EVENTS), events_topic=EVENTS, metrics=metrics,
        answer_wait_s=0.2, refusal_wait_s=0.05,
    )  # fmt: skip
    resolver = UnknownResolver(
        probe=MemoryLogProbe(producer, bound_s=BOUND_S), memory=memory, events_topic=EVENTS,
        marker=marker, metrics=metrics,
    )  # fmt: skip
    outcomes = Outcomes(
        domains=domains, store=store, rejections=rejections, memory=memory, resolver=resolver
    )
    return Side(service, outcomes, producer, marker, memory, store, metrics, clock)


async def test_before_the_bound_it_stays_unknown_and_says_when_it_can_be_resolved(
    side: Side,
) -> None:
    event_id = await side.unanswered("o1")
    side.clock.now += BOUND_S - 10
    told = await side.outcomes.ask("order", "o1", event_id=event_id)
    assert told is not None and told["outcome"] == "unknown"
    assert 9 <= told["resolvable_in_s"] <= 10
    await side.landed_late("o1", event_id)  # it may still land: and it does
    side.clock.now += 10
    told = await side.outcomes.ask("order", "o1", event_id=event_id)
    assert told is not None and told["outcome"] == "accepted"


async def test_past_the_bound_an_absent_event_is_not_stored_once_and_its_mark_dropped(
    side: Side,
) -> None:
    event_id = await side.unanswered("o2")
    assert await side.marker.peek("order:o2") is not None  # the unknown event's mark stays
    side.clock.now += BOUND_S
    told = await side.outcomes.ask("order", "o2", event_id=event_id)
    assert told is not None and told["outcome"] == "not_stored", told
    assert "safe to send it again" in told["message"]
    assert await side.marker.peek("order:o2") is None  # the next request reads the store
    again = await side.outcomes.ask("order", "o2", event_id=event_id)
    assert again is not None and again["outcome"] == "not_stored"
    assert side.resolved("not_stored") == 1  # resolved once, however often it is asked
    sent = await side.ask("o2", "OrderPlaced", ITEMS)  # sent again: a new event
    assert sent.status == 202, sent


async def test_a_copy_that_landed_late_is_accepted_then_stored(side: Side) -> None:
    event_id = await side.unanswered("o3", command_id="place-3")
    await side.landed_late("o3", event_id, command_id="place-3")
    side.clock.now += BOUND_S
    told = await side.outcomes.ask("order", "o3", command_id="place-3")
    assert told is not None and told["outcome"] == "accepted" and told["offset"] == 0, told
    retry = await side.ask("o3", "OrderPlaced", ITEMS, command_id="place-3")
    assert retry.status == 202 and retry.body["duplicate"], retry  # told, never sent twice
    assert len(side.producer.records(EVENTS)) == 1
    assert side.resolved("accepted") == 1


async def test_not_stored_with_a_command_id_lets_the_retry_send_it_again(side: Side) -> None:
    event_id = await side.unanswered("o4", command_id="place-4")
    assert event_id == derived_event_id("order", "o4", "place-4")
    side.clock.now += BOUND_S
    told = await side.outcomes.ask("order", "o4", command_id="place-4")
    assert told is not None and told["outcome"] == "not_stored", told
    retry = await side.ask("o4", "OrderPlaced", ITEMS, command_id="place-4")
    assert retry.status == 202 and not retry.body.get("duplicate"), retry
    assert [r.headers[0][1].decode() for r in side.producer.records(EVENTS)] == [event_id]


async def test_a_retry_in_flight_is_never_resolved_over(side: Side) -> None:
    event_id = await side.unanswered("o5", command_id="place-5")
    side.clock.now += BOUND_S
    taken = await side.memory.claim("order:o5", "place-5", event_id, "retry-token")
    assert taken is not None and taken.state == "unknown"  # a retry holds the claim now
    told = await side.outcomes.ask("order", "o5", event_id=event_id)
    assert told is not None and told["outcome"] == "unknown", told
    assert side.resolved("not_stored") == 0


async def test_while_kafka_cannot_be_read_it_stays_unknown(side: Side) -> None:
    event_id = await side.unanswered("o6")
    side.clock.now += BOUND_S
    side.producer.fail_next(1, StreamUnavailable("Kafka is down"), on="find")
    told = await side.outcomes.ask("order", "o6", event_id=event_id)
    assert told is not None and told["outcome"] == "unknown", told
    told = await side.outcomes.ask("order", "o6", event_id=event_id)  # Kafka back
    assert told is not None and told["outcome"] == "not_stored", told


async def test_an_idempotent_producer_has_no_bound_so_absence_is_never_claimed(
    side: Side,
) -> None:
    event_id = await side.unanswered("o7")
    unbounded = UnknownResolver(
        probe=MemoryLogProbe(side.producer, bound_s=None), memory=side.memory,
        events_topic=EVENTS,
    )  # fmt: skip
    side.clock.now += 3600
    record = await side.memory.recall_event("order:o7", event_id)
    assert record is not None
    told = await unbounded.resolve("order", "o7", record)
    assert told["outcome"] == "unknown" and "resolvable_in_s" not in told


async def test_a_sync_write_without_an_answer_is_never_resolved_from_the_events_topic(
    side: Side,
) -> None:
    """A sync domain writes to the store, not to the events topic: its absence there says
    nothing, so the outcome stays unknown (the store decides it)."""
    await side.memory.unknown("account:a1", None, "e-sync")
    side.clock.now += 10 * BOUND_S
    told = await side.outcomes.ask("account", "a1", event_id="e-sync")
    assert told is not None and told["outcome"] == "unknown", told
    assert side.resolved("not_stored") == 0


async def test_a_second_resolver_after_the_first_answers_the_same(side: Side) -> None:
    """Two processes resolve at once: the one whose record comes second answers what the first
    recorded, never unknown again."""
    event_id = await side.unanswered("o8")
    side.clock.now += BOUND_S
    record = await side.memory.recall_event("order:o8", event_id)
    assert record is not None and record.state == "unknown"
    first = UnknownResolver(
        probe=MemoryLogProbe(side.producer, bound_s=BOUND_S), memory=side.memory,
        events_topic=EVENTS,
    )  # fmt: skip
    second = UnknownResolver(
        probe=MemoryLogProbe(side.producer, bound_s=BOUND_S), memory=side.memory,
        events_topic=EVENTS,
    )  # fmt: skip
    assert (await first.resolve("order", "o8", record))["outcome"] == "not_stored"
    assert (await second.resolve("order", "o8", record))["outcome"] == "not_stored"
