"""Where consumer groups stand, over the in-memory producer: tests commit for a group, and may
drop offsets from a partition (as compaction or transaction markers leave holes on Kafka)."""

from __future__ import annotations

from collections.abc import Collection

from topics.errors import StreamUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.adapters.memory.producer import MemoryProducer
from workers.ports import Positions


class MemoryPositions(Switchable):
    """``Positions`` over a ``MemoryProducer``; ``commit`` stands in for a group's commits."""

    def __init__(self, producer: MemoryProducer) -> None:
        self.faults = Faults(lambda what: StreamUnavailable(down_message("positions", what)))
        self._producer = producer
        self._committed: dict[tuple[str, str, int], int] = {}
        self._holes: dict[tuple[str, int], set[int]] = {}

    def commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        """``group`` has committed ``offset`` (the next it reads) on ``topic``/``partition``."""
        self._committed[(group, topic, partition)] = offset

    def hole(self, topic: str, partition: int, offsets: Collection[int]) -> None:
        """These offsets hold no record a consumer is given (markers, compacted away)."""
        self._holes.setdefault((topic, partition), set()).update(offsets)

    async def committed(
        self, group: str, topic: str, partitions: Collection[int]
    ) -> dict[int, int | None]:
        await self.faults.enter("committed", f"asking where {group} stands")
        return {p: self._committed.get((group, topic, p)) for p in partitions}

    async def earliest(self, topic: str, partitions: Collection[int]) -> dict[int, int]:
        await self.faults.enter("earliest", f"asking for the first offsets of {topic}")
        return {p: 0 for p in partitions}

    async def offsets_between(self, topic: str, partition: int, start: int, end: int) -> list[int]:
        await self.faults.enter("offsets_between", f"reading {topic}/{partition}")
        holes = self._holes.get((topic, partition), set())
        return [
            r.offset
            for r in self._producer.records(topic, partition=partition)
            if start <= r.offset < end and r.offset not in holes
        ]

    async def stop(self) -> None:
        """Nothing to close."""


def _implements(positions: MemoryPositions) -> Positions:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return positions
