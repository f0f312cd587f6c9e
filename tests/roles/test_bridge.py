"""The bridge: stored events (current version) and their derived events on a bus, at least once."""

from __future__ import annotations

from snapshot_rules.domain import Domains, Route
from topics.envelope import Event, encode, new_event
from workers.adapters.memory import MemoryProducer
from workers.bus import BusUnavailable, InProcessEventBus
from workers.examples.domains.cart import CART
from workers.metrics import Metrics
from workers.ports import Handler, Record, Subscription
from workers.retries import Backoff
from workers.roles.append.bridge import Bridge
from workers.roles.deadletter import DeadLetters
from workers.roles.retry import until_done
from workers.storage.domain import storage_domain

from .support import sample

USERS = storage_domain(
    "users", type_prefix="User", mapped_types=["UserEmailChanged"], routes=(Route("users"),)
)
DOMAINS = Domains([USERS, CART])


class FlakyBus:
    """A bus whose publish attempts numbered in ``failing`` fail, as a Redis that stopped answering."""

    def __init__(self, failing: set[int] | None = None) -> None:
        self.failing = failing or set()
        self.attempts = 0
        self.published: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.attempts += 1
        if self.attempts in self.failing:
            raise BusUnavailable("Redis did not answer while publishing (a test took it down).")
        self.published.append(event)

    async def subscribe(self, event_type: str, handler: Handler) -> Subscription:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def consumed(events: list[Event]) -> list[tuple[Event, Record]]:
    return [(e, Record("t.events.stored", 0, n, e.key, encode(e))) for n, e in enumerate(events)]


def user_events() -> list[Event]:
    change = {"operation": "update", "diff": {"email": "a@b.c"}, "changed_paths": ["email"]}
    mapped = [{"type": "UserEmailChanged", "data": {"new_email": "a@b.c"}}]
    return [
        new_event("users", "u1", "UserCreated", {**change, "operation": "create"}, version=1),
        new_event("users", "u1", "UserUpdated", {**change, "mapped": mapped}, version=2),
    ]


async def test_stored_and_derived_events_reach_their_subscribers_by_type(metrics: Metrics) -> None:
    bus = InProcessEventBus()
    seen: dict[str, list[Event]] = {"UserEmailChanged": [], "*": []}
    for kind, got in seen.items():

        async def record(event: Event, got: list[Event] = got) -> None:
            got.append(event)

        await bus.subscribe(kind, record)
    bridge = Bridge(bus=bus, bus_name="redis", domains=DOMAINS, metrics=metrics)
    old_cart = new_event(
        "cart", "c1", "ItemAdded", {"sku": "t", "qty": 1, "price": 1.25}, version=2
    )
    stranger = new_event("ledger", "l1", "Entered", {"n": 1}, version=1)  # no enabled domain
    assert await bridge.handle(consumed([*user_events(), old_cart, stranger])) == 5
    assert [e.type for e in seen["*"]] == [
        "UserCreated", "UserUpdated", "UserEmailChanged", "ItemAdded", "Entered",
    ]  # fmt: skip
    [email] = seen["UserEmailChanged"]
    assert (email.aggregate_id, email.version, dict(email.data)) == (
        "u1",
        2,
        {"new_email": "a@b.c"},
    )
    lifted = seen["*"][3]
    assert (lifted.schema_version, lifted.data["unit_price_cents"]) == (2, 125)
    assert sample(metrics, "eventfleet_events_bridged_total", bus="redis") == 5


async def test_a_bus_that_is_down_pauses_the_batch_and_it_is_published_again(
    metrics: Metrics,
) -> None:
    bus = FlakyBus(failing={2, 3})  # the second publish fails, then the retry's first
    bridge = Bridge(bus=bus, bus_name="nats", domains=DOMAINS, metrics=metrics)
    batch = consumed(user_events())
    fast = Backoff(first_s=0.001, max_s=5.0)
    handled = await until_done(
        lambda: bridge.handle(batch), role="bridge", metrics=metrics, policy=fast
    )
    assert handled == 3
    # At least once: what went out before the failure goes out again with the retried batch.
    assert [e.type for e in bus.published] == [
        "UserCreated", "UserCreated", "UserUpdated", "UserEmailChanged",
    ]  # fmt: skip
    assert sample(metrics, "eventfleet_dependency_retries_total", role="bridge", service="bus") == 2


async def test_an_event_its_upcaster_cannot_read_is_dead_lettered(
    metrics: Metrics, producer: MemoryProducer
) -> None:
    bus = FlakyBus()
    letters = DeadLetters(producer, topic="t.events.dlq", role="bridge", metrics=metrics)
    bridge = Bridge(
        bus=bus, bus_name="redis", domains=DOMAINS, metrics=metrics, dead_letters=letters
    )
    broken = new_event("cart", "c1", "ItemAdded", {"sku": "t", "qty": 1}, version=2)
    fine = new_event("cart", "c2", "CartOpened", {"customer_id": "a"}, version=1)
    assert await bridge.handle(consumed([broken, fine])) == 1
    assert [e.aggregate_id for e in bus.published] == ["c2"]
    [letter] = producer.records("t.events.dlq")
    assert dict(letter.headers)["dlq_reason"] == b"upcast_failed" and letter.value == encode(broken)
