"""The chat room's view as the projection tests use it: a memory event store, views, a runner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snapshot_rules.replay import replay
from tests.chat_events import ROOM
from topics.envelope import Event
from workers.adapters.memory import MemoryDatabase, MemoryEventStore, MemoryViewStore
from workers.examples.domains.chat_room import CHAT_MESSAGES, reduce_chat_room
from workers.metrics import Metrics, create_metrics
from workers.roles.read.projections import ProjectionRunner

from .support import sample


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


def wired(metrics: Metrics) -> Wiring:
    """The runner on the chat messages view; scans in batches of 10 so a rebuild yields often."""
    events, db = MemoryEventStore(scan_batch=10), MemoryDatabase()
    views = MemoryViewStore(db, CHAT_MESSAGES.collection)
    runner = ProjectionRunner(CHAT_MESSAGES, views=views, events=events, metrics=metrics)
    return Wiring(events, db, views, runner, metrics)
