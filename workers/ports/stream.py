"""The event stream's ports (Kafka): producing, reading topics, consumer positions and the
appender's progress; the records they move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from topics.envelope import Event, encode, kafka_headers
from topics.frozen import slot_init


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, as received."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp_ms: int | None = None
    """The record's Kafka timestamp, where the reader kept it."""


@dataclass(frozen=True, slots=True)
class TopicWindow:
    """A window of one partition read backwards from a cursor: ``records`` are the newest
    (at most the limit asked) below it, in offset order; older ones start below ``start``."""

    partition: int
    earliest: int  # the partition's first offset still kept
    end: int  # the offset the next record will get (the high-water mark)
    start: int  # the window's lowest offset asked: read before it for older records
    records: Sequence[Record] = ()

    @property
    def older(self) -> bool:
        """Records older than this window remain."""
        return self.start > self.earliest


@slot_init
@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()

    @classmethod
    def of(cls, event: Event) -> Outgoing:
        """An event as a record: keyed by aggregate, correlation ids as headers."""
        return cls(event.key, encode(event), kafka_headers(event))

    def check_bytes(self) -> None:
        """TypeError unless its key, value and header values are bytes: what every producer
        checks of every record of a call before it sends any."""
        if not isinstance(self.value, bytes) or not (
            self.key is None or isinstance(self.key, bytes)
        ):
            raise TypeError(f"a record's key and value must be bytes, got {self!r:.200}")
        for name, value in self.headers:
            if not isinstance(value, bytes):
                raise TypeError(f"header {name!r} must be bytes, got {type(value).__name__}")


@slot_init
@dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of a produce: where Kafka put the record."""

    topic: str
    partition: int
    offset: int


class Producer(Protocol):
    """Produces with acks=all; every call either is acknowledged or raises in bounded time.

    Order is kept per key within one call and across calls of one caller. Raises
    StreamUnavailable when Kafka did not acknowledge.
    """

    async def send(
        self, topic: str, message: Outgoing, *, partition: int | None = None
    ) -> Delivery: ...

    async def send_many(self, topic: str, messages: Sequence[Outgoing]) -> list[Delivery]:
        """Produce all, keeping their order per key, and wait for every acknowledgement."""
        ...


class LogProbe(Protocol):
    """Whether a record of one event landed on its key's partition: the log's own word on a
    produce that was sent and never answered (``workers.roles.command.resolver``)."""

    def delivery_bound_s(self) -> float | None:
        """Seconds after a send was recorded unknown past which the producer writes no byte of
        it any more; None when there is no such bound (an idempotent producer retries until
        the broker acknowledges)."""
        ...

    async def find(
        self, topic: str, key: bytes, event_id: str, *, since: datetime
    ) -> Delivery | None:
        """The record carrying ``event_id`` on ``key``'s partition, reading from the first
        record stamped at or after ``since`` to an end the broker gave after it had answered
        and then run on for a grace: every request that reached it before is in that end.
        None when no such record is there. StreamUnavailable when Kafka does not answer."""
        ...


class TopicTail(Protocol):
    """Reads a topic from positions on, and keeps reading as records arrive (no group).

    ``after`` maps a partition to the next offset to read (a partition not named starts at
    its beginning). Each yield is the records that arrived, in offset order per partition;
    an empty list means nothing came for ``idle_s``. StreamUnavailable when Kafka does not
    answer.
    """

    def follow(
        self, topic: str, *, after: Mapping[int, int], idle_s: float
    ) -> AsyncIterator[list[Record]]: ...


@dataclass(frozen=True, slots=True)
class TopicSlice:
    """What one bounded read of a topic from positions found (``TopicPages.read``)."""

    partitions: int
    """How many partitions the topic has."""
    starts: Mapping[int, int]
    """Where each partition's run starts: the position asked, or its first kept offset."""
    runs: Mapping[int, Sequence[Record]]
    """Each partition's records from its start on, contiguous and in offset order (a
    partition read to nothing has none)."""
    ends: Mapping[int, int]
    """The offset each partition's next record will get, as the read found it."""


class TopicPages(Protocol):
    """Reads a topic from positions, a bounded slice at a time, no group: the global read's
    pages. Nothing is committed; the caller keeps its position.

    ``after`` maps a partition to the next offset to read (a partition not named starts at its
    first kept offset). At most ``limit`` records in all come back, each partition's a
    contiguous run from its start, read up to the end the partition had when read.
    PositionOutdated when ``after`` names an offset the partition does not hold (before its
    first kept record, or past its end); StreamUnavailable when Kafka does not answer.
    """

    async def read(self, topic: str, *, after: Mapping[int, int], limit: int) -> TopicSlice: ...


class Positions(Protocol):
    """Where a consumer group stands on a topic, and which offsets of a partition hold records:
    what an agent asks before it lets a commit pass an offset it never saw
    (``workers.stream.offsets``). Every call raises StreamUnavailable when Kafka does not
    answer in time."""

    async def committed(
        self, group: str, topic: str, partitions: Collection[int]
    ) -> dict[int, int | None]:
        """The next offset ``group`` reads on each partition; None where it never committed."""
        ...

    async def earliest(self, topic: str, partitions: Collection[int]) -> dict[int, int]:
        """The first offset each partition still keeps (where a group without a commit starts)."""
        ...

    async def offsets_between(self, topic: str, partition: int, start: int, end: int) -> list[int]:
        """The offsets in ``[start, end)`` that hold records a consumer is given, in order; []
        when none do (transaction markers, records compacted away)."""
        ...


class WrittenLog(Protocol):
    """What topics already hold, read back: how the forwarder learns which copies it, or the
    previous owner of its partitions, already produced before it produces again. Every call
    raises StreamUnavailable when Kafka does not answer in time."""

    async def time_at(self, topic: str, partition: int, offset: int) -> int | None:
        """The timestamp (ms) of the record at ``offset`` of the partition, or of the first one
        after it; None when the partition holds none there yet."""
        ...

    async def since(self, topic: str, since_ms: int) -> list[Record]:
        """Every record of ``topic`` (all partitions) stamped at or after ``since_ms``, up to
        the partition ends as the call found them; [] for a topic that does not exist."""
        ...


class AppendProgress(Protocol):
    """How far the appender has decided the events topic: the evidence behind a refusal.

    The marker and the store can both trail events in flight (accepted, not yet stored). A
    refusal judged on the store's head is true only once every event that may precede it is
    decided; this port tells when that holds for one aggregate's partition.
    """

    async def caught_up(self, aggregate_key: bytes, *, within_s: float) -> bool:
        """True once every record the key's partition of the events topic held when asked is
        decided by the appender (its group committed past them), waiting up to ``within_s``;
        False at the bound (``within_s`` 0: answered at once). TypeError for a key that is not
        bytes; StreamUnavailable when Kafka cannot be asked."""
        ...
