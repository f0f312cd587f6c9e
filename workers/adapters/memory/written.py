"""What topics already hold, read back, over the in-memory producer (``WrittenLog``).

Records kept in memory carry no time: every record counts as recent (``since`` returns them
all, ``time_at`` says 0), which only ever makes a reader look further back, never miss one.
"""

from __future__ import annotations

from topics.errors import StreamUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.adapters.memory.producer import MemoryProducer
from workers.ports import Record, WrittenLog


class MemoryWrittenLog(Switchable):
    """``WrittenLog`` over a ``MemoryProducer``; a test may hold it down (``faults``)."""

    def __init__(self, producer: MemoryProducer) -> None:
        self.faults = Faults(lambda what: StreamUnavailable(down_message("written log", what)))
        self._producer = producer
        self.reads = 0
        """How many times ``since`` was called (tests check when the forwarder reads back)."""

    async def time_at(self, topic: str, partition: int, offset: int) -> int | None:
        await self.faults.enter("time_at", f"reading {topic}/{partition}")
        held = self._producer.records(topic, partition=partition)
        return 0 if any(r.offset >= offset for r in held) else None

    async def since(self, topic: str, since_ms: int) -> list[Record]:
        await self.faults.enter("since", f"reading {topic} back")
        self.reads += 1
        return self._producer.records(topic)

    async def stop(self) -> None:
        """Nothing to close."""


def _implements(written: MemoryWrittenLog) -> WrittenLog:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return written
