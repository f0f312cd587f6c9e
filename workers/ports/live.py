"""Stored events told onward: the bridge's bus (by event type) and the live feed that wakes
catch-up subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from topics.envelope import Event
from workers.ports.stream import Outgoing


@dataclass(frozen=True, slots=True)
class Subscription:
    """A handle to cancel one bus subscription."""

    cancel: Callable[[], Awaitable[None]]


Handler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    """Publishes stored events to subscribers by event type (``"*"``: every type)."""

    async def publish(self, event: Event) -> None: ...

    async def subscribe(self, event_type: str, handler: Handler) -> Subscription: ...

    async def close(self) -> None: ...


# --- the live feed (catch-up subscriptions) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveChannel:
    """What a live listener hears: one aggregate's stored events, or (``aggregate_id`` None)
    every stored event of one aggregate type."""

    aggregate_type: str
    aggregate_id: str | None = None


LiveDeliver = Callable[[Event | None], None]
"""Called with each announced event heard on a channel, in the order heard; with None when
the listener may have missed announcements (a reconnect), so it must read the store."""


@dataclass(frozen=True, slots=True)
class Listening:
    """A handle to stop one live listener."""

    stop: Callable[[], Awaitable[None]]


class LiveFeed(Protocol):
    """Stored events announced to every process that serves live subscriptions.

    At most once and best effort, on purpose (Pub/Sub): an announcement may be lost, repeated
    or come late; ``announce`` never raises and never waits for the feed. A subscriber keeps
    its own position and reads every gap from the event store by version, so the feed only
    makes delivery fast, never correct. A listener told None must read the store.
    """

    def announce(self, records: Sequence[Outgoing]) -> None:
        """Announce stored events as produced to events.stored (key ``type:id``, envelope)."""
        ...

    async def listen(self, channel: LiveChannel, deliver: LiveDeliver) -> Listening:
        """Call ``deliver`` for every event announced on ``channel`` from now on."""
        ...

    async def close(self) -> None: ...


_STOPPING: set[asyncio.Task[None]] = set()


def stop_once_subscribed(subscribing: asyncio.Task[Listening]) -> None:
    """Stop a listener that ``LiveFeed.listen`` is still subscribing (or has subscribed), in the
    background: cancelling the subscription could leave its listener registered, and waiting
    for it would hold back whoever stops listening. A subscription that failed needs nothing."""

    async def stop() -> None:
        with contextlib.suppress(Exception):
            await (await subscribing).stop()

    task = asyncio.create_task(stop())
    _STOPPING.add(task)
    task.add_done_callback(_STOPPING.discard)
