"""The chat room's view as the projection tests use it: a memory event store, views, a runner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from snapshot_rules.replay import replay
from topics.envelope import Event, new_event
from workers.adapters.memory import MemoryDatabase, MemoryEventStore, MemoryViewStore
from workers.examples.domains.chat_room import CHAT_MESSAGES, CHAT_ROOM, reduce_chat_room
from workers.metrics import Metrics, create_metrics
from workers.roles.read.projections import ProjectionRunner

from .support import T0, sample

ROOM = "chat_room"


@dataclass
class Wiring:
    """Memory event store, a database of views, and a live runner on the chat messages view."""

    events: MemoryEventStore
    db: MemoryDatabase
    views: MemoryViewStore
    runner: ProjectionRunner
    metrics: Metrics

    def runner_on(self, views: MemoryViewStore) -> ProjectionRunner:
        return ProjectionRunner(
            CHAT_MESSAGES, views=views, events=self.events, metrics=create_metrics()
        )

    async def store(self, events: list[Event]) -> list[Event]:
        await self.events.append(events)
        return events

    async def truth(self, room: str) -> tuple[int, Any]:
        """The room as replay of the store sees it: (version, messages)."""
        folded = replay(reduce_chat_room, await self.events.select((ROOM, room)))
        return folded.version, folded.state["messages"] if folded.state else None

    def counted(self, outcome: str) -> float:
        return sample(
            self.metrics,
            "eventfleet_projection_events_total",
            projection="chat_messages",
            outcome=outcome,
        )


def room_events(room: str, ops: list[tuple[str, str, str]], first: int = 1) -> list[Event]:
    """Stored-looking events: ``(type, message_id, sender)`` numbered from ``first``."""
    out = []
    for version, (kind, mid, sender) in enumerate(ops, start=first):
        data: dict[str, Any] = {"message_id": mid, "sender_id": sender}
        if kind != "MessageDeleted":
            data["content"] = f"{kind} v{version}"
        at = T0 + timedelta(seconds=version)
        schema = CHAT_ROOM.schema_version(kind)
        stamped = {"version": version, "occurred_at": at, "schema_version": schema}
        out.append(new_event(ROOM, room, kind, data, **stamped))
    return out


CONVERSATION = [
    ("MessageSent", "m1", "ann"),
    ("MessageSent", "m2", "bob"),
    ("MessageEdited", "m1", "ann"),
    ("MessageEdited", "m2", "ann"),  # not her message: ignored
    ("MessageDeleted", "m1", "ann"),
    ("MessageEdited", "m1", "ann"),  # deleted: no longer in the window
    ("MessageSent", "m3", "cy"),
]


def wired(metrics: Metrics) -> Wiring:
    """The runner on the chat messages view; scans in batches of 10 so a rebuild yields often."""
    events, db = MemoryEventStore(scan_batch=10), MemoryDatabase()
    views = MemoryViewStore(db, CHAT_MESSAGES.collection)
    runner = ProjectionRunner(CHAT_MESSAGES, views=views, events=events, metrics=metrics)
    return Wiring(events, db, views, runner, metrics)
