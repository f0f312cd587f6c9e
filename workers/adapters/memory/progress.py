"""The appender's progress over the in-memory producer: tests say how far it has decided."""

from __future__ import annotations

import asyncio
import time

from topics.errors import StreamUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.adapters.memory.producer import MemoryProducer, partition_for
from workers.adapters.partitions import check_key
from workers.ports import AppendProgress


class MemoryAppendProgress(Switchable):
    """``decided[p]``: the next offset of partition ``p`` the appender has not decided.

    ``decide_all()`` says it has caught up with everything produced so far.
    """

    def __init__(self, producer: MemoryProducer, topic: str) -> None:
        self.faults = Faults(lambda what: StreamUnavailable(down_message("progress", what)))
        self._producer = producer
        self._topic = topic
        self.decided: dict[int, int] = {}

    async def stop(self) -> None:
        """Nothing to close."""

    def decide_all(self) -> None:
        for record in self._producer.records(self._topic):
            self.decided[record.partition] = max(
                self.decided.get(record.partition, 0), record.offset + 1
            )

    async def caught_up(self, aggregate_key: bytes, *, within_s: float) -> bool:
        check_key(aggregate_key)
        await self.faults.enter("caught_up", "reading the appender's progress")
        partition = partition_for(aggregate_key, self._producer.partitions(self._topic))
        end = len(self._producer.records(self._topic, partition=partition))
        deadline = time.monotonic() + within_s
        while self.decided.get(partition, 0) < end:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(0.01, within_s))
        return True


def _implements(progress: MemoryAppendProgress) -> AppendProgress:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return progress
