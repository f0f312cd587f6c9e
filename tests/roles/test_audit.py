"""The auditor finds every kind of fault it claims to find: each is planted in a clean fleet state
(events, snapshots, views, marks, topics on the memory adapters) and must be reported, by kind,
on the aggregate it was planted in, and nothing else."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapshot_rules.domain import Domains
from snapshot_rules.projection import advance
from snapshot_rules.replay import replay
from tests.orders import ITEMS
from topics.envelope import Event, encode, new_event
from workers.adapters.memory import (
    MemoryDatabase,
    MemoryEventStore,
    MemoryMarker,
    MemorySnapshotStore,
    MemoryViewStore,
)
from workers.adapters.memory.parked import MemoryParkedEvents
from workers.examples.domains.chat_room import CHAT_MESSAGES, CHAT_ROOM
from workers.examples.domains.order import ORDER
from workers.ports import MarkRequest, ParkedEntry, Record, Snapshot
from workers.roles.ops import audit
from workers.roles.ops.audit import WARNINGS, Auditor, AuditSources

DOMAINS = Domains([ORDER, CHAT_ROOM])
T0 = datetime(2026, 5, 1, tzinfo=UTC)
ORDER_STEPS = [
    ("OrderPlaced", ITEMS),
    ("OrderPaid", {"amount": 2}),
    ("OrderShipped", {"carrier": "dhl"}),
]


def order_history(oid: str) -> list[Event]:
    return [
        new_event("order", oid, kind, data, version=v, occurred_at=T0)
        for v, (kind, data) in enumerate(ORDER_STEPS, start=1)
    ]


def room_history(room: str, n: int = 4) -> list[Event]:
    return [
        new_event(
            "chat_room", room, "MessageSent",
            {"message_id": f"m{v}", "sender_id": "ann", "content": f"hi {v}"},
            version=v, occurred_at=T0,
        )
        for v in range(1, n + 1)
    ]  # fmt: skip


@dataclass
class Fleet:
    """A consistent fleet state, and the topics as read back."""

    events: MemoryEventStore
    snapshots: MemorySnapshotStore
    views: MemoryViewStore
    marker: MemoryMarker
    topics: dict[str, list[Event]]
    histories: dict[tuple[str, str], list[Event]]
    parked: MemoryParkedEvents = field(default_factory=MemoryParkedEvents)

    def auditor(self) -> Auditor:
        async def read(topic: str) -> list[Event]:
            return list(self.topics.get(topic, []))

        sources = AuditSources(
            events=self.events,
            snapshots=self.snapshots,
            views={CHAT_MESSAGES.name: self.views},
            marks=self.marker,
            read_topic=read,
            parked=self.parked,
        )
        return Auditor(DOMAINS, sources, mark_bound_s=0.01)


async def clean_fleet() -> Fleet:
    events, snapshots, marker = MemoryEventStore(), MemorySnapshotStore(), MemoryMarker()
    views = MemoryViewStore(MemoryDatabase(), CHAT_MESSAGES.collection)
    histories = {("order", "o1"): order_history("o1"), ("order", "o2"): order_history("o2")}
    histories |= {("chat_room", "r1"): room_history("r1"), ("chat_room", "r2"): room_history("r2")}
    topics: dict[str, list[Event]] = {"events.stored": [], "orders": [], "chat": []}
    for (kind, aid), history in histories.items():
        await events.append(history)
        topics["events.stored"] += history
        topics["orders" if kind == "order" else "chat"] += history
        if kind == "order":
            state = replay(ORDER.reducer, history).state
            assert state is not None
            await snapshots.save(Snapshot(kind, aid, len(history), state, T0))
            head = history[-1]
            await marker.check_and_mark(
                MarkRequest(f"order:{aid}", head.type, head.id, ["*"], fallback="-")
            )
        else:
            doc = advance(CHAT_MESSAGES, None, history).doc
            assert doc is not None
            assert await views.write(None, doc)
    return Fleet(events, snapshots, views, marker, topics, histories)


Plant = Callable[[Fleet], Awaitable[None]]


async def gap(f: Fleet) -> None:
    extra = new_event("order", "o3", "OrderPlaced", ITEMS, version=1, occurred_at=T0)
    skipped = new_event("order", "o3", "OrderPaid", {"amount": 2}, version=3, occurred_at=T0)
    await f.events.append([extra, skipped])
    f.topics["events.stored"] += [extra, skipped]
    f.topics["orders"] += [extra, skipped]


async def invalid_history(f: Fleet) -> None:
    placed = new_event("order", "o3", "OrderPlaced", ITEMS, version=1, occurred_at=T0)
    shipped = new_event("order", "o3", "OrderShipped", {"carrier": "x"}, version=2, occurred_at=T0)
    await f.events.append([placed, shipped])  # shipped before it was paid
    f.topics["events.stored"] += [placed, shipped]
    f.topics["orders"] += [placed, shipped]


async def stored_past_its_expectation(f: Fleet) -> None:
    placed = new_event("order", "o4", "OrderPlaced", ITEMS, version=1, occurred_at=T0)
    paid = new_event("order", "o4", "OrderPaid", {"amount": 2}, version=2, occurred_at=T0,
                     expected_version=3)  # fmt: skip
    await f.events.append([placed, paid])  # a valid path, but paid expected version 3
    f.topics["events.stored"] += [placed, paid]
    f.topics["orders"] += [placed, paid]


async def stale_mark(f: Fleet) -> None:
    first = f.histories[("order", "o1")][0]
    await f.marker.repair("order:o1", f.histories[("order", "o1")][-1].id, None)
    await f.marker.check_and_mark(
        MarkRequest("order:o1", first.type, first.id, ["*"], fallback="-")
    )


async def parked(f: Fleet) -> None:
    """o2's next event could not be stored: parked, its mark names it (a warning, no gap)."""
    head = new_event("order", "o2", "OrderDelivered", {}, schema_version=9)
    record = Record("events", 0, 7, head.key, encode(head))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    await f.parked.park(
        [ParkedEntry("order:o2", 1, record, "unknown_schema_version", "", head.id, at)]
    )
    await f.marker.check_and_mark(MarkRequest("order:o2", head.type, head.id, ["*"], fallback="-"))


async def snapshot_ahead(f: Fleet) -> None:
    state = {"status": "delivered"}
    await f.snapshots.save(Snapshot("order", "o1", 9, state, T0))


async def snapshot_mismatch(f: Fleet) -> None:
    f.snapshots = MemorySnapshotStore()
    for oid in ("o1", "o2"):
        state = replay(ORDER.reducer, f.histories[("order", oid)]).state
        assert state is not None
        if oid == "o1":
            state = {**state, "total": 999}
        await f.snapshots.save(Snapshot("order", oid, 3, state, T0))


async def view_mismatch(f: Fleet) -> None:
    doc = await f.views.load(("chat_room", "r1"))
    assert doc is not None
    changed = replace(doc, view={**doc.view, "messages": doc.view["messages"][:-1]})
    assert await f.views.write(doc, changed)


async def view_missing(f: Fleet) -> None:
    views = MemoryViewStore(MemoryDatabase(), CHAT_MESSAGES.collection)
    doc = await f.views.load(("chat_room", "r2"))
    assert doc is not None and await views.write(None, doc)
    f.views = views  # r1's view is gone


async def view_emptied(f: Fleet) -> None:
    doc = await f.views.load(("chat_room", "r1"))
    assert doc is not None
    assert await f.views.write(doc, replace(doc, view={"messages": [], "horizon": 1}))


async def view_ahead(f: Fleet) -> None:
    doc = await f.views.load(("chat_room", "r1"))
    assert doc is not None
    assert await f.views.write(doc, replace(doc, version=9))  # past the room's 4 stored events


async def out_of_order_downstream(f: Fleet) -> None:
    o1 = f.histories[("order", "o1")]
    rest = [e for e in f.topics["orders"] if e.aggregate_id != "o1"]
    f.topics["orders"] = [o1[1], o1[0], o1[2], *rest]  # paid before placed


async def double_downstream(f: Fleet) -> None:
    f.topics["orders"].append(f.histories[("order", "o1")][1])  # at least once: a warning


async def missing_downstream(f: Fleet) -> None:
    o1 = f.histories[("order", "o1")]
    f.topics["orders"] = [e for e in f.topics["orders"] if e.id != o1[1].id]


async def extra_downstream(f: Fleet) -> None:
    ghost = new_event("order", "ghost", "OrderPlaced", ITEMS, version=1, occurred_at=T0)
    f.topics["orders"].append(ghost)


PLANTED: dict[str, tuple[Plant, tuple[str, str]]] = {
    "gap": (gap, ("order", "o3")),
    "invalid_history": (invalid_history, ("order", "o3")),
    "past_expectation": (stored_past_its_expectation, ("order", "o4")),
    "stale_mark": (stale_mark, ("order", "o1")),
    "snapshot_ahead": (snapshot_ahead, ("order", "o1")),
    "snapshot_mismatch": (snapshot_mismatch, ("order", "o1")),
    "view_mismatch": (view_mismatch, ("chat_room", "r1")),
    "view_missing": (view_missing, ("chat_room", "r1")),
    "view_emptied": (view_emptied, ("chat_room", "r1")),
    "view_ahead": (view_ahead, ("chat_room", "r1")),
    "out_of_order": (out_of_order_downstream, ("order", "o1")),
    "double": (double_downstream, ("order", "o1")),
    "parked": (parked, ("order", "o2")),
    "missing_downstream": (missing_downstream, ("order", "o1")),
    "extra_downstream": (extra_downstream, ("order", "ghost")),
}
REPORTED_AS = {"view_emptied": "view_mismatch", "past_expectation": "invalid_history"}
"""An emptied view holds a version but not the replay's messages: a mismatch."""


async def test_a_clean_fleet_has_no_findings() -> None:
    report = await (await clean_fleet()).auditor().audit()
    assert report.ok and report.findings == [], report.findings
    assert report.checked["views"] == 2 and report.checked["snapshots"] == 2
    assert report.checked["marks"] == 4  # every async aggregate; the rooms have no mark


@pytest.mark.parametrize("planted", sorted(PLANTED))
async def test_every_planted_fault_is_found_by_kind_where_it_was_planted(planted: str) -> None:
    fleet = await clean_fleet()
    plant, where = PLANTED[planted]
    await plant(fleet)
    report = await fleet.auditor().audit()
    found = {(f.kind, f.aggregate_type, f.aggregate_id) for f in report.findings}
    assert found == {(REPORTED_AS.get(planted, planted), *where)}, report.findings
    assert report.ok is (planted in WARNINGS)  # a double copy is at least once, not an error


def test_every_kind_the_auditor_reports_is_planted() -> None:
    """A new kind of finding needs its planted fault here."""
    source = Path(audit.__file__).read_text()
    kinds = set(re.findall(r'(?:find|Finding)\(\s*"([a-z_]+)"', source))
    for line in source.splitlines():  # kind = "a" if ... else "b"
        if re.search(r"\bkind = ", line):
            kinds |= set(re.findall(r'"([a-z_]+)"', line))
    planted = {REPORTED_AS.get(p, p) for p in PLANTED}
    assert kinds and kinds <= planted, sorted(kinds - planted)
