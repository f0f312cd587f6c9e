"""The forwarder: every stored event to its domain's routed topics, bytes and order intact."""

from __future__ import annotations

import pytest

from snapshot_rules.domain import Domains, Route
from topics.envelope import decode, encode, new_event
from topics.errors import StreamUnavailable
from workers.adapters.memory import MemoryProducer, partition_for
from workers.examples.domains.cart import CART
from workers.metrics import Metrics
from workers.roles.append.forwarder import Forwarder
from workers.roles.deadletter import DeadLetters
from workers.storage.domain import storage_domain

from .forwarding import NAMES, as_consumed
from .support import added, sample


@pytest.fixture
def forwarder(producer: MemoryProducer, domains: Domains, metrics: Metrics) -> Forwarder:
    return Forwarder(producer=producer, domains=domains, names=NAMES, metrics=metrics)


def forwarded(metrics: Metrics, topic: str) -> float:
    return sample(metrics, "eventfleet_events_forwarded_total", topic=topic)


def skipped(metrics: Metrics, topic: str) -> float:
    return sample(metrics, "eventfleet_forward_copies_skipped_total", topic=topic)


async def test_each_event_goes_to_every_route_that_matches_its_type(
    forwarder: Forwarder, producer: MemoryProducer, metrics: Metrics
) -> None:
    batch = as_consumed([*added("c1", [1, 2, 3], closing=3), *added("c2", [1])])
    assert await forwarder.handle(batch) == 5  # 4 to counters, the Closed one to closings too
    assert producer.topics() == ["t.closings", "t.counters"]
    assert [r.value for r in producer.records("t.counters")] == [rec.value for _, rec in batch]
    [closing] = producer.records("t.closings")
    assert closing.value == batch[2][1].value
    assert (forwarded(metrics, "t.counters"), forwarded(metrics, "t.closings")) == (4, 1)


async def test_key_bytes_and_headers_pass_through_with_the_position_added(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    batch = as_consumed(added("c3", [1, 2]))
    await forwarder.handle(batch)
    for (event, record), out in zip(batch, producer.records("t.counters"), strict=True):
        assert (out.key, out.value, tuple(out.headers)) == (
            record.key,
            record.value,
            (
                *record.headers,
                ("eventfleet-event-id", event.id.encode()),
                ("eventfleet-version", str(event.version).encode()),
                ("eventfleet-part", b"0"),
            ),
        )
        assert out.partition == partition_for(event.key, 3)  # keyed by aggregate, as upstream


async def test_order_per_aggregate_is_kept_across_interleaved_aggregates(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    a, b = added("a", range(1, 6)), added("b", range(1, 6))
    interleaved = [e for pair in zip(a, b, strict=True) for e in pair]
    await forwarder.handle(as_consumed(interleaved[:6]))
    await forwarder.handle(as_consumed(interleaved[6:], first_offset=6))
    for aggregate in (a, b):
        key = aggregate[0].key
        sent = [r.value for r in producer.records("t.counters") if r.key == key]
        assert sent == [encode(e) for e in aggregate]


async def test_events_without_a_route_or_a_domain_produce_nothing(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    stranger = new_event("order", "o1", "OrderPlaced", {"items": []}, version=1)
    timed = added("t1", [1], domain="timed")  # a domain with no routes
    assert forwarder.routes(stranger) == [] and forwarder.routes(timed[0]) == []
    assert await forwarder.handle(as_consumed([stranger, *timed])) == 0
    assert await forwarder.handle([]) == 0
    assert producer.calls["send"] == 0


async def test_kafka_down_fails_the_batch_and_a_retry_sends_it(
    forwarder: Forwarder, producer: MemoryProducer, metrics: Metrics
) -> None:
    batch = as_consumed(added("c4", [1, 2, 3], closing=3))
    producer.down()
    with pytest.raises(StreamUnavailable) as caught:
        await forwarder.handle(batch)
    assert caught.value.retriable and producer.topics() == []
    assert forwarded(metrics, "t.counters") == 0
    producer.up()
    assert await forwarder.handle(batch) == 4  # the agent's retry
    assert len(producer.records("t.counters")) == 3


async def test_a_failure_on_a_later_topic_resends_only_what_did_not_go(
    forwarder: Forwarder, producer: MemoryProducer, metrics: Metrics
) -> None:
    batch = as_consumed(added("c5", [1, 2], closing=2))
    producer.fail_next(on="t.closings")
    with pytest.raises(StreamUnavailable):
        await forwarder.handle(batch)  # the first topic went, the second did not
    assert len(producer.records("t.counters")) == 2 and producer.records("t.closings") == []
    assert await forwarder.handle(batch) == 1  # the agent's retry: only the closing copy
    assert [r.value for r in producer.records("t.counters")] == [rec.value for _, rec in batch]
    assert len(producer.records("t.closings")) == 1
    assert forwarded(metrics, "t.counters") == 2 and forwarded(metrics, "t.closings") == 1
    assert skipped(metrics, "t.counters") == 2


async def test_derived_events_go_downstream_as_records_of_their_own_type(
    producer: MemoryProducer, metrics: Metrics
) -> None:
    users = storage_domain(
        "users", type_prefix="User", mapped_types=["UserEmailChanged"],
        routes=(Route("users"), Route("emails", frozenset({"UserEmailChanged"}))),
    )  # fmt: skip
    forwarder = Forwarder(producer=producer, domains=Domains([users]), names=NAMES, metrics=metrics)
    mapped = [{"type": "UserEmailChanged", "data": {"new_email": "a@b.c"}}]
    change = {"operation": "update", "diff": {"email": "a@b.c"}, "changed_paths": ["email"]}
    updated = new_event("users", "u1", "UserUpdated", {**change, "mapped": mapped}, version=2)
    created = new_event("users", "u1", "UserCreated", {**change, "operation": "create"}, version=1)
    assert await forwarder.handle(as_consumed([created, updated])) == 4
    on_users = [decode(r.value) for r in producer.records("t.users")]
    assert [(e.type, e.version) for e in on_users] == [
        ("UserCreated", 1), ("UserUpdated", 2), ("UserEmailChanged", 2),
    ]  # fmt: skip
    [email] = [decode(r.value) for r in producer.records("t.emails")]
    assert (email.type, dict(email.data), email.key) == (
        "UserEmailChanged",
        {"new_email": "a@b.c"},
        updated.key,
    )
    assert email == on_users[2]  # one id, wherever it goes: consumers dedupe by it
    assert {r.partition for r in producer.records("t.users")} == {partition_for(updated.key, 3)}


async def test_downstream_sees_the_current_schema_version(
    producer: MemoryProducer, metrics: Metrics
) -> None:
    forwarder = Forwarder(producer=producer, domains=Domains([CART]), names=NAMES, metrics=metrics)
    old = new_event("cart", "c1", "ItemAdded", {"sku": "tea", "qty": 1, "price": 2.5}, version=2)
    current = new_event("cart", "c1", "ItemAdded", {"sku": "tea", "qty": 1, "unit_price_cents": 9},
                        version=3, schema_version=2)  # fmt: skip
    batch = as_consumed([old, current])
    assert await forwarder.handle(batch) == 2
    first, second = producer.records("t.carts")
    lifted = decode(first.value)
    assert (lifted.id, lifted.schema_version, dict(lifted.data)) == (
        old.id, 2, {"sku": "tea", "qty": 1, "unit_price_cents": 250},
    )  # fmt: skip
    assert second.value == batch[1][1].value  # already current: its bytes as they came


async def test_an_event_its_upcaster_cannot_read_is_dead_lettered_and_the_rest_goes_on(
    producer: MemoryProducer, metrics: Metrics
) -> None:
    letters = DeadLetters(producer, topic="t.events.dlq", role="forwarder", metrics=metrics)
    forwarder = Forwarder(producer=producer, domains=Domains([CART]), names=NAMES,
                          metrics=metrics, dead_letters=letters)  # fmt: skip
    broken = new_event("cart", "c1", "ItemAdded", {"sku": "tea", "qty": 1}, version=2)  # no price
    newer = new_event("cart", "c2", "CartOpened", {"customer_id": "x"}, version=1, schema_version=9)
    fine = new_event("cart", "c3", "CartOpened", {"customer_id": "ann"}, version=1)
    assert await forwarder.handle(as_consumed([broken, newer, fine])) == 1
    reasons = [dict(r.headers)["dlq_reason"] for r in producer.records("t.events.dlq")]
    assert reasons == [b"upcast_failed", b"upcast_failed"]
    details = [dict(r.headers)["dlq_detail"].decode() for r in producer.records("t.events.dlq")]
    assert "KeyError('price')" in details[0] and "schema version 9" in details[1]
    assert [decode(r.value).aggregate_id for r in producer.records("t.carts")] == ["c3"]
