"""Upcasting: stored events keep their schema version; every reader sees the current one.

The property over every declared pair (event type, older version): whatever data the old
schema accepts, the upcast data satisfies the current schema, and a history holding the old
event replays (through the stores, as queries do) to the state the same history written at
the current version gives; views and the auditor agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from snapshot_rules.domain import ANY, Domain, Domains, Upcast, event
from snapshot_rules.replay import State
from snapshot_rules.schema import Number, Text, fields
from tests.strategies import data_for, history
from topics.envelope import Event, new_event
from topics.errors import ReplayFailed, UnknownSchemaVersion
from workers.adapters.memory import (
    MemoryDatabase,
    MemoryEventStore,
    MemorySnapshotStore,
    MemoryViewStore,
)
from workers.examples.domains import all_domains
from workers.metrics import create_metrics
from workers.roles.ops.audit import Auditor, AuditSources
from workers.roles.read.projections import ProjectionRunner
from workers.roles.state import StateLoader

DOMAINS = all_domains()
PAIRS = [
    (domain, kind, old)
    for domain in DOMAINS
    for kind, spec in domain.events.items()
    for old in range(1, spec.version)
]


def test_the_examples_declare_pairs_to_check() -> None:
    assert {(d.name, kind, old) for d, kind, old in PAIRS} == {
        ("chat_room", "MessageDeleted", 1), ("cart", "ItemAdded", 1),
    }  # fmt: skip


def _lifted_to(data: Mapping[str, Any], domain: Domain, kind: str, old: int) -> Event:
    return new_event(domain.name, "a-1", kind, dict(data), version=1, schema_version=old)


async def _replays(domain: Domain, events: list[Event]) -> tuple[Any, Any, bool]:
    """(latest state, view documents, audit ok) of a history, read through memory stores."""
    metrics = create_metrics()
    store, snapshots = MemoryEventStore(), MemorySnapshotStore()
    await store.append(events)
    try:
        folded = await StateLoader(store, snapshots, metrics).latest(domain, "a-1", save=False)
    except ReplayFailed as e:
        folded = type(e)  # both histories must fail alike
    views = []
    for projection in domain.projections:
        view_store = MemoryViewStore(MemoryDatabase(), projection.collection)
        runner = ProjectionRunner(projection, views=view_store, events=store, metrics=metrics,
                                  upcast=Domains([domain]).upcast)  # fmt: skip
        await runner.catch_up((domain.name, "a-1"))
        doc = await view_store.load((domain.name, "a-1"))
        views.append(None if doc is None else doc.view)
    report = await Auditor(
        Domains([domain]), AuditSources(events=store, snapshots=snapshots)
    ).audit()
    return folded, views, report.ok


@pytest.mark.parametrize(("domain", "kind", "old"), PAIRS, ids=lambda p: getattr(p, "name", p))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_replay_of_an_upcast_old_event_equals_replay_of_the_new_one(
    domain: Domain, kind: str, old: int, data: st.DataObject
) -> None:
    spec = domain.spec(kind)
    old_data = data.draw(data_for(spec.upcasts[old - 1].schema), label="old data")
    upcast = domain.upcast(_lifted_to(old_data, domain, kind, old))
    assert upcast.schema_version == spec.version
    domain.check_data(kind, upcast.data)  # the current schema accepts every old event, lifted

    prefix = data.draw(history(domain), label="prefix")
    current = prefix[-1].type if prefix else None
    assume(ANY in spec.after or (current or "none") in spec.after)
    stored_old = new_event(domain.name, "a-1", kind, old_data, version=len(prefix) + 1,
                           schema_version=old)  # fmt: skip
    written_new = replace(stored_old, data=upcast.data, schema_version=spec.version)
    as_old = asyncio.run(_replays(domain, [*prefix, stored_old]))
    as_new = asyncio.run(_replays(domain, [*prefix, written_new]))
    assert as_old == as_new
    assert as_old[2], "the auditor judges the lifted event by the current schema and rules"


def keep(state: State | None, e: Event) -> State:
    return {"last": dict(e.data)}


def _v1_to_v2(data: Mapping[str, Any]) -> dict[str, Any]:
    return {**data, "unit": "kg"}


def _v2_to_v3(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"grams": data["amount"] * 1000, "note": data.get("note", "-")}


WEIGHED_V1 = fields(amount=Number())
WEIGHED_V2 = fields(amount=Number(), unit=Text())
SCALE = Domain(
    name="scale",
    events={
        "Weighed": event(
            fields(grams=Number(integer=True), note=Text()),
            upcasts=[Upcast(WEIGHED_V1, _v1_to_v2), Upcast(WEIGHED_V2, _v2_to_v3)],
        ),
        "Tared": event(),
    },
    reducer=keep,
)


def weighed(data: dict[str, Any], schema: int) -> Event:
    return new_event("scale", "s1", "Weighed", data, version=1, schema_version=schema)


def test_upcasters_chain_from_any_older_version_and_leave_current_events_alone() -> None:
    assert SCALE.upcast(weighed({"amount": 2}, 1)).data == {"grams": 2000, "note": "-"}
    assert SCALE.upcast(weighed({"amount": 2, "unit": "kg", "note": "x"}, 2)).data == {
        "grams": 2000, "note": "x",
    }  # fmt: skip
    current = weighed({"grams": 5, "note": "n"}, 3)
    assert SCALE.upcast(current) is current
    tared = new_event("scale", "s1", "Tared", {}, version=2)
    assert SCALE.upcast(tared) is tared  # a type that never changed
    stranger = new_event("scale", "s1", "Unknown", {}, version=3)
    assert SCALE.upcast(stranger) is stranger  # the judge and the auditor report unknown types
    assert Domains([SCALE]).upcast(new_event("other", "x", "Y", {}, version=1)).type == "Y"


def test_an_event_from_newer_code_is_not_guessed_at() -> None:
    with pytest.raises(
        UnknownSchemaVersion, match=r"schema version 4, but this code knows versions 1 to 3"
    ):
        SCALE.upcast(weighed({"grams": 1}, 4))
    assert issubclass(UnknownSchemaVersion, ReplayFailed)  # queries: 500 replay_failed, parked


def test_a_failing_upcaster_names_itself_and_the_event() -> None:
    # Step 1 -> 2 passes "weight" along; step 2 -> 3 needs "amount": the failing step is named.
    with pytest.raises(
        ReplayFailed,
        match=r"scale s1: the upcaster of Weighed from schema version 2 raised KeyError\('amount'\) on the event at version 1",
    ):
        SCALE.upcast(weighed({"weight": 2}, 1))
    broken = Domain(name="b", events={"E": event(upcasts=[Upcast(fields(), lambda d: None)])},  # type: ignore[arg-type,return-value]
                    reducer=keep)  # fmt: skip
    with pytest.raises(ReplayFailed, match="returned NoneType; it must return the data as a dict"):
        broken.upcast(new_event("b", "x", "E", {}, version=1))


def test_upcasters_are_checked_at_declaration() -> None:
    with pytest.raises(ValueError, match=r"b\.E: upcasts\[0\] is .*Upcast\(schema_of_version_1"):
        Domain(name="b", events={"E": event(upcasts=[lambda d: d])}, reducer=keep)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="needs an Obj schema"):
        Domain(name="b", events={"E": event(upcasts=[Upcast(Text(), _v1_to_v2)])}, reducer=keep)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs an Obj schema"):
        Domain(name="b", events={"E": event(upcasts=[Upcast(fields(), "lift")])}, reducer=keep)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (True, "data.price must be a number"),
        ("9.99", "data.price must be a number"),
        (-1, "data.price"),
    ],
    ids=["bool", "text", "negative"],
)
def test_data_an_old_schema_refuses_is_refused_not_lifted(bad: Any, problem: str) -> None:
    """A cart v1 event whose ``price`` is not a price must not become a plausible v2 one."""
    from topics.errors import InvalidEventData
    from workers.examples.domains.cart import CART

    old = new_event(
        "cart", "c1", "ItemAdded", {"sku": "tea", "qty": 1, "price": bad}, schema_version=1
    )
    with pytest.raises(InvalidEventData, match=r"ItemAdded \(schema version 1\): " + problem):
        CART.check_as_written(old)
    good = replace(old, data={"sku": "tea", "qty": 1, "price": 2.5})
    assert CART.check_as_written(good).data == {"sku": "tea", "qty": 1, "unit_price_cents": 250}
    current = new_event("cart", "c1", "ItemAdded", {"sku": "t", "qty": 1, "unit_price_cents": True},
                        schema_version=2)  # fmt: skip
    with pytest.raises(InvalidEventData, match="unit_price_cents must be an integer"):
        CART.check_as_written(current)
