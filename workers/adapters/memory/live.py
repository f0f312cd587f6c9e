"""The live feed in memory: announcements delivered at once to this process's listeners.

``lose_next(n)`` drops announcements as Pub/Sub may, and ``reconnect()`` tells every listener
it may have missed some, so a test can prove that subscribers fill gaps from the store.
"""

from __future__ import annotations

from collections.abc import Sequence

from topics.envelope import decode
from topics.errors import InvalidEnvelope
from workers.ports import Listening, LiveChannel, LiveDeliver, Outgoing


class MemoryLiveFeed:
    """Every listener of one process; announcements fan out synchronously."""

    def __init__(self) -> None:
        self._listeners: dict[LiveChannel, list[LiveDeliver]] = {}
        self._lose = 0
        self.announced = 0
        """Announcements made so far (lost ones included)."""

    def announce(self, records: Sequence[Outgoing]) -> None:
        for record in records:
            self.announced += 1
            if self._lose > 0:
                self._lose -= 1
                continue
            if record.key is None:
                continue
            try:
                event = decode(record.value)
            except InvalidEnvelope:
                continue  # as a Redis listener does: what is not an envelope reaches nobody
            for channel in (
                LiveChannel(event.aggregate_type, event.aggregate_id),
                LiveChannel(event.aggregate_type),
            ):
                for deliver in tuple(self._listeners.get(channel, ())):
                    deliver(event)

    async def listen(self, channel: LiveChannel, deliver: LiveDeliver) -> Listening:
        self._listeners.setdefault(channel, []).append(deliver)

        async def stop() -> None:
            listeners = self._listeners.get(channel, [])
            if deliver in listeners:
                listeners.remove(deliver)
            if not listeners:
                self._listeners.pop(channel, None)

        return Listening(stop)

    def listeners(self) -> int:
        """How many listeners are registered now."""
        return sum(len(found) for found in self._listeners.values())

    def lose_next(self, n: int = 1) -> None:
        """The next ``n`` announcements reach nobody, as a lost Pub/Sub message."""
        self._lose += n

    def reconnect(self) -> None:
        """Every listener hears None: it may have missed announcements."""
        for listeners in tuple(self._listeners.values()):
            for deliver in tuple(listeners):
                deliver(None)

    async def close(self) -> None:
        self._listeners.clear()
