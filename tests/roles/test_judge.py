"""The store is the judge: whatever the arrival order, losses and stalls, stored histories are valid.

Pure: the judge decides from a head and a queue, so Hypothesis runs it over interleavings
of validated chains (as two racing commands processes, a lost produce, a phantom mark or
a direct producer would make them) without any server.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.domain import NEW
from topics.envelope import NEW_AGGREGATE, Event, new_event
from workers.examples.domains.order import ORDER
from workers.ports import Head, Record
from workers.roles.append.judge import TRANSITION_REJECTED, Waiting, judge, missing_predecessors

TYPES = ["OrderPlaced", "OrderPaid", "OrderShipped", "OrderDelivered", "OrderCancelled"]
WAIT_S = 2.0


def event(kind: str, after: str | None, order: str = "o1") -> Event:
    return new_event("order", order, kind, _data(kind), after=after)


def _data(kind: str) -> dict[str, object]:
    return {
        "OrderPlaced": {"items": [{"sku": "tea", "qty": 1, "price": 2}]},
        "OrderPaid": {"amount": 2},
        "OrderShipped": {"carrier": "dhl"},
        "OrderCancelled": {"reason": "no"},
    }.get(kind, {})


def waiting(e: Event, arrived: float = 0.0) -> Waiting:
    return Waiting(e, Record("events", 0, 0, e.key, b""), arrived + WAIT_S)


def valid_path(types: list[str]) -> bool:
    current = None
    for kind in types:
        if (current or NEW) not in ORDER.spec(kind).after:
            return False
        current = kind
    return True


# --- the cases named in the issue ------------------------------------------------------------


def test_in_order_events_are_stored_in_order() -> None:
    placed = event("OrderPlaced", NEW_AGGREGATE)
    paid = event("OrderPaid", placed.id)
    verdicts = judge(ORDER, None, [waiting(placed), waiting(paid)], now=0)
    assert [w.event.id for w in verdicts.store] == [placed.id, paid.id]
    assert verdicts.head == Head(2, paid.id, "OrderPaid") and not verdicts.wait


def test_a_successor_produced_first_waits_for_its_predecessor_and_goes_after_it() -> None:
    placed = event("OrderPlaced", NEW_AGGREGATE)
    paid = event("OrderPaid", placed.id)
    shipped = event("OrderShipped", paid.id)
    head = Head(1, placed.id, "OrderPlaced")
    first = judge(ORDER, head, [waiting(shipped)], now=0.1)
    assert not first.store and [w.event.id for w in first.wait] == [shipped.id]
    then = judge(ORDER, head, [*first.wait, waiting(paid, 0.2)], now=0.2)
    assert [w.event.type for w in then.store] == ["OrderPaid", "OrderShipped"]


def test_a_successor_of_a_predecessor_that_never_comes_is_judged_at_its_deadline() -> None:
    placed = event("OrderPlaced", NEW_AGGREGATE)
    phantom = event("OrderPaid", placed.id)  # marked, never produced (a Redis timeout)
    shipped = event("OrderShipped", phantom.id)
    head = Head(1, placed.id, "OrderPlaced")
    assert judge(ORDER, head, [waiting(shipped)], now=WAIT_S - 0.01).wait
    late = judge(ORDER, head, [waiting(shipped)], now=WAIT_S)
    assert not late.store and [r.reason for r in late.refuse] == [TRANSITION_REJECTED]
    assert "OrderShipped may not follow OrderPlaced" in late.refuse[0].message


def test_an_event_validated_against_a_stale_store_is_judged_on_the_real_head() -> None:
    placed = event("OrderPlaced", NEW_AGGREGATE)
    paid = event("OrderPaid", placed.id)
    paid_again = event("OrderPaid", placed.id)  # the mark was lost; the store had not seen `paid`
    head = Head(2, paid.id, "OrderPaid")
    verdicts = judge(ORDER, head, [waiting(paid_again)], now=0, stored={placed.id})
    assert not verdicts.store and verdicts.refuse[0].reason == TRANSITION_REJECTED


def test_two_events_validated_after_one_head_are_decided_in_one_call() -> None:
    """A lost mark's race: both were validated after the head. Once the first is stored, the
    head it was stored over is known stored, so the second is judged on the new head at once,
    not left waiting for its deadline."""
    placed = event("OrderPlaced", NEW_AGGREGATE)
    paid, cancelled = event("OrderPaid", placed.id), event("OrderCancelled", placed.id)
    head = Head(1, placed.id, "OrderPlaced")
    verdicts = judge(ORDER, head, [waiting(paid), waiting(cancelled)], now=0)
    assert [w.event.id for w in verdicts.store] == [paid.id, cancelled.id]  # paid, cancelled
    assert not verdicts.wait
    shipped = event("OrderShipped", placed.id)
    verdicts = judge(ORDER, head, [waiting(paid), waiting(shipped)], now=0)
    assert [w.event.id for w in verdicts.store] == [paid.id, shipped.id]
    delivered = event("OrderDelivered", placed.id)
    verdicts = judge(ORDER, head, [waiting(paid), waiting(delivered)], now=0)
    assert [r.waiting.event.id for r in verdicts.refuse] == [delivered.id] and not verdicts.wait


def test_a_successor_of_a_refused_event_does_not_wait_for_it() -> None:
    placed = event("OrderPlaced", NEW_AGGREGATE)
    refused = event("OrderShipped", placed.id)
    cancelled = event("OrderCancelled", refused.id)
    head = Head(1, placed.id, "OrderPlaced")
    verdicts = judge(ORDER, head, [waiting(cancelled)], now=0, refused={refused.id})
    assert [w.event.type for w in verdicts.store] == ["OrderCancelled"]


def test_an_event_nobody_vouched_for_is_judged_on_the_head_in_arrival_order() -> None:
    raw = [event("OrderPlaced", None), event("OrderPlaced", None), event("OrderPaid", None)]
    verdicts = judge(ORDER, None, [waiting(e) for e in raw], now=0)
    assert [w.event.type for w in verdicts.store] == ["OrderPlaced", "OrderPaid"]
    assert [r.waiting.event.id for r in verdicts.refuse] == [raw[1].id]


def test_a_new_aggregate_claim_on_an_existing_aggregate_is_judged_on_it() -> None:
    head = Head(1, "x", "OrderPlaced")
    verdicts = judge(ORDER, head, [waiting(event("OrderPlaced", NEW_AGGREGATE))], now=0)
    assert verdicts.refuse and not verdicts.store


def test_missing_predecessors_names_only_what_the_judge_cannot_place() -> None:
    placed = event("OrderPlaced", NEW_AGGREGATE)
    paid = event("OrderPaid", placed.id)
    far = event("OrderShipped", "9d1c3a9e-0000-4000-8000-000000000000")
    head = Head(1, placed.id, "OrderPlaced")
    assert missing_predecessors(head, [waiting(paid), waiting(far)]) == {far.after}
    assert missing_predecessors(None, [waiting(placed), waiting(paid)]) == set()


# --- the property ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Validated requests (each after the one the marker knew), then arrivals in any order."""

    chain: list[Event]  # in validation order
    lost: set[str]  # validated, never produced
    arrivals: list[tuple[float, Event]]  # (time, event), in arrival order


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    kinds = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=8))
    chain: list[Event] = []
    mark: Event | None = None
    for kind in kinds:
        # A stale marker (lost mark, expired, another process) validates after an older event.
        stale = chain and draw(st.booleans()) and draw(st.integers(0, 3)) == 0
        basis = draw(st.sampled_from(chain)) if stale else mark
        current = basis.type if basis else None
        if (current or NEW) not in ORDER.spec(kind).after:
            continue  # the marker refuses it at the edge
        validated = event(kind, basis.id if basis else NEW_AGGREGATE)
        chain.append(validated)
        mark = validated
    lost = {e.id for e in chain if draw(st.integers(0, 5)) == 0}
    produced = [e for e in chain if e.id not in lost]
    order = draw(st.permutations(produced))
    times = sorted(draw(st.lists(st.floats(0, 5), min_size=len(order), max_size=len(order))))
    return Scenario(chain, lost, list(zip(times, order, strict=True)))


def run(scenario: Scenario) -> tuple[list[Event], list[str]]:
    """Feed arrivals to the judge as the appender does; stored events and refused ids."""
    head: Head | None = None
    queue: list[Waiting] = []
    stored: list[Event] = []
    refused: list[str] = []
    ticks = [t for t, _ in scenario.arrivals] + [t + WAIT_S for t, _ in scenario.arrivals]
    arrivals = list(scenario.arrivals)
    for now in sorted(set(ticks)):
        while arrivals and arrivals[0][0] <= now:
            t, e = arrivals.pop(0)
            queue.append(waiting(e, t))
        stored_ids = {e.id for e in stored}
        verdicts = judge(ORDER, head, queue, now=now, stored=stored_ids, refused=set(refused))
        stored += [w.event for w in verdicts.store]
        refused += [r.waiting.event.id for r in verdicts.refuse]
        queue, head = verdicts.wait, verdicts.head
    assert not queue, "every event is decided once its deadline passed"
    return stored, refused


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_every_stored_history_is_a_valid_path_and_every_event_is_decided(s: Scenario) -> None:
    stored, refused = run(s)
    assert valid_path([e.type for e in stored])
    produced = {e.id for _, e in s.arrivals}
    assert {e.id for e in stored} | set(refused) == produced
    assert not {e.id for e in stored} & set(refused)
    assert len({e.id for e in stored}) == len(stored)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_without_losses_or_stale_marks_validated_order_is_stored_order(data: st.DataObject) -> None:
    kinds = data.draw(st.sampled_from([TYPES[:4], ["OrderPlaced", "OrderPaid", "OrderCancelled"]]))
    chain: list[Event] = []
    for kind in kinds:
        chain.append(event(kind, chain[-1].id if chain else NEW_AGGREGATE))
    order = data.draw(st.permutations(chain))
    arrivals = [(i * 0.01, e) for i, e in enumerate(order)]  # all within the wait bound
    stored, refused = run(Scenario(chain, set(), arrivals))
    assert [e.id for e in stored] == [e.id for e in chain] and not refused
