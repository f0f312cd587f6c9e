"""Closing the holes an agent's offset ledger finds, so that no commit passes a record the agent
never received (``workers.stream.offsets``).

A partition whose start is unknown (just assigned) starts at the group's committed offset (or
the partition's first offset, if the group never committed). A hole below the lowest record held
is read from Kafka: if it holds records, they were dropped on their way to the agent and the
consumer is sought back to redeliver them; if it holds none (transaction markers, compaction),
the floor steps past it. A redelivery arrives behind whatever was fetched before the seek (a
backlog in Faust's queues): the hole is read and sought again only once the agent has received
nothing for ``redeliver_s``.

A hole at the tail shows no record after it. Faust drops records only while a rebalance ends
(its recovery clears the stream queues as it resumes them), so once the rebalance has ended and
the agent has been idle a moment, a partition whose log goes on past the next offset the agent
expects has lost its last records on the way: they are read and redelivered the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import Protocol

from workers.metrics import Metrics
from workers.ports import Positions
from workers.stream.offsets import Gap

log = logging.getLogger(__name__)


class Consumer(Protocol):
    """What the closer asks of the agent's consumer, on the agent's topic."""

    async def seek(self, partition: int, offset: int) -> None:
        """Seek ``partition`` back to ``offset``: its records are fetched and delivered again."""

    async def skip(self, partition: int, start: int, end: int) -> None:
        """Tell the consumer that ``partition`` holds no record in ``[start, end)``."""

    def end(self, partition: int) -> int | None:
        """The end of ``partition``'s log as the consumer last fetched it (None: not yet)."""

    def quiet(self, seconds: float) -> bool:
        """Whether the agent has received nothing for ``seconds``."""


class Ledger(Protocol):
    """An agent's ``OffsetLedger`` whatever it acks with: what closing gaps and draining read."""

    def unknown(self) -> list[int]: ...

    def expected(self, partition: int) -> int | None: ...

    def start(self, partition: int, floor: int) -> None: ...

    def gaps(self) -> list[Gap]: ...

    def partitions(self) -> set[int]: ...

    def undecided(self, partitions: Collection[int] | None = None) -> int: ...


class GapCloser:
    """Closes one agent's gaps on ``topic`` for its consumer group ``group``."""

    def __init__(
        self,
        *,
        positions: Positions,
        consumer: Consumer,
        group: str,
        topic: str,
        role: str,
        metrics: Metrics,
        redeliver_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._positions = positions
        self._group = group
        self._topic = topic
        self._role = role
        self._metrics = metrics
        self._consumer = consumer
        self._redeliver_s = redeliver_s
        self._clock = clock
        self._sought: dict[int, tuple[int, float]] = {}  # partition → (offset, look again at)
        self._quiet_tail: dict[int, tuple[int, int]] = {}  # partition → (from, to): no records

    async def close(self, ledger: Ledger) -> int:
        """Close what can be closed now; the number of gaps left (a redelivery on its way).

        StreamUnavailable when Kafka cannot be asked: the gaps stay, nothing passes them.
        """
        unknown = ledger.unknown()
        if unknown:
            committed = await self._positions.committed(self._group, self._topic, unknown)
            never = [p for p in unknown if committed.get(p) is None]
            firsts = await self._positions.earliest(self._topic, never) if never else {}
            for partition in unknown:
                floor = committed.get(partition)
                ledger.start(partition, floor if floor is not None else firsts.get(partition, 0))
        now = self._clock()
        for gap in ledger.gaps():
            assert gap.floor is not None  # every floor was just read
            if self._waiting(gap.partition, gap.floor, now):
                continue
            if await self._redelivered(gap.partition, gap.floor, gap.first, now):
                continue
            ledger.start(gap.partition, gap.first)
            await self._consumer.skip(gap.partition, gap.floor, gap.first)
            self._metrics.offset_gaps.labels(self._role, "skipped").inc()
        return len(ledger.gaps())

    async def check_tail(self, ledger: Ledger) -> bool:
        """The agent is idle: redeliver the records of a partition past what it has received.

        True while a redelivery is on its way (look again later). StreamUnavailable when Kafka
        cannot be asked.
        """
        now = self._clock()
        pending = False
        for partition in sorted(ledger.partitions()):
            expected, end = ledger.expected(partition), self._consumer.end(partition)
            if expected is None:
                pending = True  # its start is not known yet
                continue
            if end is None or end <= expected:
                continue
            if self._quiet_tail.get(partition) == (expected, end):
                continue  # read before: no record there (a transaction marker)
            if self._waiting(partition, expected, now):
                pending = True
                continue
            if await self._redelivered(partition, expected, end, now):
                pending = True
            else:
                self._quiet_tail[partition] = (expected, end)
        return pending

    def _waiting(self, partition: int, offset: int, now: float) -> bool:
        """A seek back to ``offset`` was made and its records may still be on their way: a
        little after the seek, and as long as the agent keeps receiving records."""
        sought = self._sought.get(partition)
        if sought is None or sought[0] != offset:
            return False
        return now < sought[1] or not self._consumer.quiet(self._redeliver_s)

    async def _redelivered(self, partition: int, start: int, end: int, now: float) -> bool:
        """Seek back to ``start`` if ``[start, end)`` holds records; False when it holds none."""
        present = await self._positions.offsets_between(self._topic, partition, start, end)
        if not present:
            self._sought.pop(partition, None)
            return False
        log.warning(
            "%s: %s/%d offsets %d..%d never reached the agent (%d records); seeking back to "
            "redeliver them",
            self._role,
            self._topic,
            partition,
            start,
            end - 1,
            len(present),
        )
        await self._consumer.seek(partition, start)
        self._sought[partition] = (start, now + self._redeliver_s)
        self._metrics.offset_gaps.labels(self._role, "redelivered").inc()
        return True

    def forget(self, partitions: set[int] | None = None) -> None:
        """Partitions were revoked (None: all): a seek made for them no longer stands."""
        if partitions is None:
            self._sought.clear()
            self._quiet_tail.clear()
        for partition in partitions or ():
            self._sought.pop(partition, None)
            self._quiet_tail.pop(partition, None)
