"""Bounded reads of an in-memory topic from positions (``TopicPages``), as Kafka answers them."""

from __future__ import annotations

from collections.abc import Mapping

from topics.errors import PositionOutdated
from workers.adapters.memory.producer import MemoryProducer
from workers.ports import Record, TopicPages, TopicSlice


class MemoryPages:
    """``TopicPages`` over the in-memory producer: every partition keeps every offset from 0,
    so a position past a partition's end is the one an outdated position can name here."""

    def __init__(self, produced: MemoryProducer) -> None:
        self._produced = produced

    async def read(self, topic: str, *, after: Mapping[int, int], limit: int) -> TopicSlice:
        if limit < 1:
            raise ValueError(f"a read of {topic} takes at least one record, not {limit}")
        await self._produced.faults.enter("read", f"reading {topic}")
        count = self._produced.partitions(topic)
        starts = {p: after.get(p, 0) for p in range(count)}
        kept = {p: self._produced.records(topic, partition=p) for p in range(count)}
        ends = {p: kept[p][-1].offset + 1 if kept[p] else 0 for p in range(count)}
        for p in range(count):
            if starts[p] > ends[p]:
                raise PositionOutdated(
                    f"the position names offset {starts[p]} of {topic} partition {p}, which "
                    f"holds offsets 0 to {ends[p]} now; read again from the beginning (no after)."
                )
        runs: dict[int, list[Record]] = {p: [] for p in range(count)}
        taken = 0
        for p in range(count):  # partition by partition, as a fetch fills its limit
            run = [r for r in kept[p] if r.offset >= starts[p]][: limit - taken]
            runs[p] = run
            taken += len(run)
        return TopicSlice(count, starts, runs, ends)

    async def stop(self) -> None:
        """Nothing to close."""


def _implements(pages: MemoryPages) -> TopicPages:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return pages
