"""The ports: every dependency role logic touches, as narrow Protocols, and the values they move.

Role logic (``workers.roles``) imports only this module, ``workers.metrics``, ``topics`` and
``snapshot_rules``. Each port has a real adapter (``workers.adapters.<technology>``) and an
in-memory one (``workers.adapters.memory``) that raises the same errors; one contract test
suite runs against both. No driver type appears in a signature here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from snapshot_rules.domain import Domain
from snapshot_rules.projection import LIVE, ViewDoc
from topics.envelope import NEW_AGGREGATE, Event, Metadata, encode, kafka_headers
from topics.errors import ConcurrencyConflict, InvalidInput

AggregateRef = tuple[str, str]
"""(aggregate_type, aggregate_id)."""

__all__ = [
    "LIVE",
    "NEW_AGGREGATE",
    "STORE_VERDICTS",
    "UNKNOWN",
    "ActionLog",
    "AggregateRef",
    "AppendConflict",
    "AppendProgress",
    "ArchivableEvents",
    "CommandMemory",
    "CommandRecord",
    "DataKey",
    "Delivery",
    "Erasure",
    "EventBus",
    "EventStore",
    "Handler",
    "Head",
    "KeyStore",
    "Listening",
    "LiveChannel",
    "LiveDeliver",
    "LiveFeed",
    "MarkRequest",
    "MarkResult",
    "Marker",
    "OperatorAction",
    "Outgoing",
    "PendingEvents",
    "Positions",
    "Producer",
    "Record",
    "Rejection",
    "Rejections",
    "ReplayClaim",
    "RuleState",
    "RuleStates",
    "Snapshot",
    "SnapshotLadder",
    "SnapshotStore",
    "Subscription",
    "SyncAppender",
    "SyncResult",
    "TicketStore",
    "TopicTail",
    "TopicWindow",
    "ViewDoc",
    "ViewStaging",
    "ViewStore",
]


# --- values -------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of a produce: where Kafka put the record."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Head:
    """The newest stored event of an aggregate: its version, id and type."""

    version: int
    event_id: str
    type: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State of an aggregate folded up to ``version``."""

    aggregate_type: str
    aggregate_id: str
    version: int
    state: dict[str, Any]
    taken_at: datetime


class SnapshotLadder(Protocol):
    """Dated snapshots kept at intervals along an aggregate's history (rungs), so a state at a
    past version or moment replays from the nearest rung below it, not from the start."""

    async def add(self, rung: Snapshot, *, last_at: datetime) -> None:
        """Keep ``rung``; ``last_at`` is when its last folded event occurred (idempotent per
        aggregate and version)."""
        ...

    async def below(
        self, aggregate: AggregateRef, *, version: int | None = None, as_of: datetime | None = None
    ) -> Snapshot | None:
        """The newest rung at or below ``version`` whose last event occurred by ``as_of``."""
        ...

    async def versions(self, aggregate: AggregateRef) -> list[int]:
        """The versions of the aggregate's rungs, ascending (few: the ladder is thinned)."""
        ...

    async def remove(self, aggregate: AggregateRef, versions: Sequence[int]) -> None:
        """Drop these rungs of the aggregate (absent ones are ignored: idempotent)."""
        ...


class AppendConflict(ConcurrencyConflict):
    """An ordered bulk append stopped at ``failed``: its id or its version is already taken.

    ``inserted`` events before it were stored; none after it were. ``id_taken`` tells a
    redelivered event (harmless) from a version another writer took (re-read and renumber).
    """

    def __init__(self, message: str, *, inserted: int, failed: Event, id_taken: bool) -> None:
        super().__init__(message)
        self.inserted = inserted
        self.failed = failed
        self.id_taken = id_taken


# --- the event store ------------------------------------------------------------------------


class EventStore(Protocol):
    """The durable, ordered history of every aggregate."""

    async def append(self, events: Sequence[Event], *, pending_publish: bool = False) -> None:
        """Insert versioned events in the given order, in one bulk write.

        Every event must carry a version. Per aggregate, (aggregate_type, aggregate_id,
        version) is unique and the event id is unique across the store; the first event
        that breaks either stops the write with AppendConflict (events before it are
        stored, none after it). ``pending_publish`` records that the events still have to
        reach events.stored (see ``PendingEvents``). StoreUnavailable when the store does
        not answer.
        """
        ...

    async def read(
        self,
        aggregate: AggregateRef,
        *,
        after_version: int = 0,
        limit: int | None = None,
        to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> list[Event]:
        """Events after ``after_version`` in version order, up to ``to_version`` and ``as_of``."""
        ...

    async def read_back(
        self,
        aggregate: AggregateRef,
        *,
        before_version: int | None = None,
        limit: int,
        types: Sequence[str] | None = None,
    ) -> list[Event]:
        """Up to ``limit`` events below ``before_version`` (None: from the newest), newest first.

        Pages backwards over one aggregate without reading what it skips: the next page is
        ``before_version=<the last event's version>``; ``before_version`` <= 1 gives []. With
        ``types``, only events of those types (the store filters; the others are not sent).
        ``limit`` must be at least 1 (ValueError). StoreUnavailable when the store does not
        answer.
        """
        ...

    async def last_event(self, aggregate: AggregateRef) -> Event | None:
        """The newest stored event of the aggregate, or None (``read_back`` with a limit of 1,
        whole: the command service's fallback when a mark is missing)."""
        ...

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        """The newest stored event of each aggregate (version, id, type); absent if none.

        One indexed lookup each: the newest version of an aggregate, and whether it has any
        event at all, are asked here.
        """
        ...

    async def find(
        self, ids: Sequence[str], *, aggregates: Sequence[AggregateRef] = ()
    ) -> dict[str, Event]:
        """The stored events among ``ids``, by id.

        ``aggregates``: the aggregates the ids belong to, where the caller knows them; a store
        sharded by aggregate then asks only their shards instead of every shard.
        """
        ...

    def scan(self, aggregate_types: Sequence[str]) -> AsyncIterator[Event]:
        """Every stored event of these aggregate types, by aggregate then version."""
        ...

    async def count(self, aggregate_types: Sequence[str]) -> int:
        """How many events of these aggregate types are stored."""
        ...

    async def versions(self, aggregate_types: Sequence[str]) -> dict[AggregateRef, int]:
        """The newest version of every aggregate of these types."""
        ...


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What an operator searches the store for: every field given must match."""

    aggregate_type: str | None = None
    id_prefix: str | None = None
    """Aggregate ids starting with this text."""
    event_type: str | None = None
    since: datetime | None = None
    """Occurred at or after this moment (UTC)."""
    until: datetime | None = None
    """Occurred before this moment (UTC)."""
    command_id: str | None = None
    correlation_id: str | None = None


SearchPosition = tuple[datetime, str]
"""Where a search page ended: the last event's (occurred_at, id)."""


class EventSearch(Protocol):
    """The console's search over every stored event."""

    async def search(
        self, query: EventQuery, *, limit: int, before: SearchPosition | None = None
    ) -> list[Event]:
        """Up to ``limit`` matching events, newest first (occurred_at, then id, descending);
        ``before``: only those after that position in this order (the next page)."""
        ...


class ArchivableEvents(EventStore, Protocol):
    """An event store events move out of (the hot one) or into (the archive)."""

    async def insert_missing(self, events: Sequence[Event]) -> int:
        """Insert those of ``events`` (versioned) whose ids are not stored yet; how many were.
        Idempotent: a move that stopped half-way is simply done again."""
        ...

    async def remove_through(self, aggregate: AggregateRef, version: int) -> int:
        """Delete the aggregate's events up to ``version``; how many were deleted."""
        ...


class PendingEvents(Protocol):
    """Stored events flagged ``pending_publish``: not yet acknowledged on events.stored."""

    async def pending(self, *, older_than: datetime, limit: int) -> list[Event]:
        """Flagged events that occurred before ``older_than``, by aggregate then version."""
        ...

    async def pending_before(self, aggregate: AggregateRef, version: int) -> list[Event]:
        """Flagged events of one aggregate below ``version``, in version order."""
        ...

    async def clear_pending(self, ids: Sequence[str]) -> None:
        """Remove the flag from these events (they reached events.stored)."""
        ...


# --- snapshots and views --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleState:
    """The snapshot rule's memory of one aggregate: its last snapshot's version and the time of
    the event that snapshot ends with (None: not known)."""

    version: int
    event_time: datetime | None = None


class RuleStates(Protocol):
    """Per-aggregate snapshot-rule state, kept where the snapshotter runs.

    In the fleet it is a Faust table whose compacted changelog topic follows each partition
    of events.stored to its owner across restarts and rebalances, so evaluating ``every(n)``
    or ``interval(s)`` reads no database. ``get`` answers from memory; ``put`` is applied at
    once and made durable in the background (a lost update costs an early snapshot, never a
    wrong one: snapshots are guarded by version). A state may be forgotten (bounded memory);
    the snapshotter then reads the aggregate's snapshot document once.
    """

    def get(self, aggregate: AggregateRef) -> RuleState | None: ...

    def put(self, aggregate: AggregateRef, state: RuleState) -> None: ...


class SnapshotStore(Protocol):
    """Latest snapshot per aggregate, guarded so it never moves backwards."""

    async def load(self, aggregate: AggregateRef) -> Snapshot | None: ...

    async def load_many(
        self, aggregates: Sequence[AggregateRef]
    ) -> dict[AggregateRef, Snapshot]: ...

    async def save(self, snapshot: Snapshot) -> bool:
        """Store ``snapshot`` unless one of the same or a newer version exists; True if stored."""
        ...


class ViewStore(Protocol):
    """One projection's view documents, one per aggregate, written with a version guard."""

    @property
    def name(self) -> str:
        """Where the views live (the collection name), for messages."""
        ...

    async def load(self, ref: AggregateRef) -> ViewDoc | None: ...

    async def load_many(self, refs: Sequence[AggregateRef]) -> dict[AggregateRef, ViewDoc]: ...

    async def versions(self) -> dict[AggregateRef, int]:
        """The applied version of every view (for a catch-up pass)."""
        ...

    async def write(self, before: ViewDoc | None, after: ViewDoc) -> bool:
        """Replace ``before`` by ``after`` unless another writer moved it first; True if written.

        ``before=None`` creates the view; it fails (False) if one exists. Otherwise the write
        happens only if the stored document still has ``before``'s version and generation.
        """
        ...

    async def insert_many(self, docs: Sequence[ViewDoc]) -> None:
        """Bulk insert into a store no one else writes (a rebuild's staging store)."""
        ...


class ViewStaging(Protocol):
    """Where a projection rebuild builds its views before swapping them in."""

    async def staging(self, generation: str) -> ViewStore:
        """A new, empty, private view store for one rebuild."""
        ...

    async def swap(self, staging: ViewStore) -> None:
        """Make ``staging`` the live views in one step (the old ones are dropped)."""
        ...

    async def discard(self, staging: ViewStore) -> None:
        """Drop a staging store after a failed rebuild."""
        ...


# --- Kafka ----------------------------------------------------------------------------------


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
    produce that was sent and never answered (``workers.roles.resolver``)."""

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


class AppendProgress(Protocol):
    """How far the appender has decided the events topic: the evidence behind a refusal.

    The marker and the store can both trail events in flight (accepted, not yet stored). A
    refusal judged on the store's head is true only once every event that may precede it is
    decided; this port tells when that holds for one aggregate's partition.
    """

    async def caught_up(self, aggregate_key: bytes, *, within_s: float) -> bool:
        """True once every record the key's partition of the events topic held when asked is
        decided by the appender (its group committed past them), waiting up to ``within_s``;
        False at the bound. StreamUnavailable when Kafka cannot be asked."""
        ...


# --- Redis: the marker and the command memory -----------------------------------------------

UNKNOWN = "?"
"""``MarkRequest.fallback``: the store was not asked; a missing mark answers ``missing``."""


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What the command memory holds for one command id.

    ``pending``: a request holds the claim (``token`` names it); ``unknown``: its write was
    sent without an answer (a retry may take the claim over); ``answered``: ``answer`` is the
    command's recorded outcome (encoded by the command side, updated by the appender when the
    store refuses the event).
    """

    state: str
    event_id: str = ""
    answer: bytes = b""
    token: str = ""
    command_id: str = ""  # by event id (``recall_event``): the scoped command id it was sent for
    age_s: float | None = None  # by event id: seconds since it was recorded


@dataclass(frozen=True, slots=True)
class MarkRequest:
    """One check-and-mark: may ``event_type`` follow the marked type, given ``allowed``?

    ``allowed`` holding ``ANY`` (``"*"``) accepts any marked type: the mark is still set.

    ``fallback`` is used when the aggregate has no mark: ``UNKNOWN`` (answer ``missing``,
    the caller then reads the store), ``NEW_AGGREGATE`` (the store holds no event), or the
    store's head as ``<type>|<event id>``. ``replace``: a mark value the store showed to be
    stale; if the mark still equals it, it counts as missing (and ``fallback`` decides).

    ``command_id`` claims the command in the same call (``token`` names this request's
    claim): a recorded answer, or a claim another request holds, is returned instead of
    marking (``answered``, ``busy``); an ``unknown`` record is taken over (``takeover``).
    """

    aggregate_key: str
    event_type: str
    event_id: str
    allowed: Sequence[str]
    fallback: str = UNKNOWN
    command_id: str | None = None
    token: str = ""
    replace: str = ""


@dataclass(frozen=True, slots=True)
class MarkResult:
    """What the marker did.

    ``status``: ``marked`` (this event is now the mark), ``mine`` (the mark already names this
    event: a retry of it), ``rejected`` (``current`` may not be followed by the event type),
    ``missing`` (no mark and no fallback: read the store and ask again), ``answered`` (the
    command has a recorded answer: ``record``) or ``busy`` (another request holds the
    command's claim). ``after`` is the id of the event it was validated after
    (``NEW_AGGREGATE`` for the first event); ``current`` is the type it was checked against
    (None: a new aggregate). ``previous`` is the mark value that was there (for ``restore``
    and ``replace``; empty when it was replaced as stale). ``takeover``: the claim was taken
    over from an earlier attempt whose outcome is unknown.
    """

    status: str
    after: str = ""
    current: str | None = None
    previous: str = ""
    record: CommandRecord | None = None
    takeover: bool = False


class Marker(Protocol):
    """The fast early answer: an aggregate's marked latest event, checked and set atomically.

    Of two concurrent conflicting requests on one key exactly one is marked. A mark lives for
    the marker TTL and is rolled back only when its event is known not to be stored: the
    produce failed before Kafka took it (``restore``), or the store refused it (``repair``);
    a mark the store shows to be stale is replaced through ``MarkRequest.replace``. The
    marker is a cache; the store is the judge. Every call raises MarkerUnavailable when
    Redis does not answer (the call may still have been applied).
    """

    async def check_and_mark(self, request: MarkRequest) -> MarkResult: ...

    async def restore(self, request: MarkRequest, marked: MarkResult) -> None:
        """Nothing was sent: put ``marked.previous`` back, only if the mark is still ours."""
        ...

    async def repair(self, aggregate_key: str, rejected_id: str, head: Head | None) -> None:
        """The store refused event ``rejected_id``: if the mark names it, mark ``head`` instead.

        May return before Redis applied it: a mark left wrong is only a wrong early answer.
        """
        ...

    async def note_aggregates(self, aggregate_keys: Sequence[str]) -> None:
        """The store now holds events of these aggregates (for the new-aggregate filter).

        May return before Redis applied it: a missed note only costs a store read.
        """
        ...

    async def filter_ready(self) -> bool:
        """Whether the new-aggregate filter knows every aggregate the store holds.

        Only a ready filter answers "certainly new" (no store read for a new aggregate). A
        lost filter is not ready; neither is one built on another run of the server (Redis
        restarted from a dump, or a replica took over: it may lack recent notes).
        """
        ...

    async def mark_filter_ready(self) -> None:
        """Every aggregate the store holds has been noted (after a rebuild) on this run."""
        ...

    async def forget_filter(self) -> None:
        """Stop answering "certainly new" until the filter is rebuilt."""
        ...

    async def peek(self, aggregate_key: str) -> tuple[str, str] | None:
        """The mark's (event type, event id), read only; None when there is none."""
        ...

    async def ping(self) -> bool: ...


class CommandMemory(Protocol):
    """Remembers each command id's outcome, so a repeated request learns what became of it.

    Command ids arrive in their sender's scope (``topics.envelope.command_scope``): two
    principals' equal ids are two keys.

    A claim is held for a short bound only; an outcome is kept for the command TTL. Raises
    MarkerUnavailable when Redis does not answer.
    """

    async def claim(
        self, aggregate_key: str, command_id: str, event_id: str, token: str
    ) -> CommandRecord | None:
        """Claim the id for request ``token``: None if claimed now (or held by it already);
        else what is there (``pending`` of another request, or ``answered``).

        An ``unknown`` record is taken over (the caller holds the claim now) and returned,
        so the caller knows an earlier attempt may have been written.
        """
        ...

    async def recall(self, aggregate_key: str, command_id: str) -> CommandRecord | None: ...

    async def recall_event(self, aggregate_key: str, event_id: str) -> CommandRecord | None:
        """An event sent without an answer (recorded by ``unknown``), by its id, with its
        ``age_s`` and the ``command_id`` it was sent for; or what it was resolved to."""
        ...

    async def resolve(
        self,
        aggregate_key: str,
        event_id: str,
        *,
        answer: bytes,
        command_answer: bytes | None,
        min_age_s: float,
    ) -> bool:
        """Replace the unknown record of ``event_id`` with ``answer`` (the log showed its fate),
        only while it is still that unknown attempt and at least ``min_age_s`` old: a newer
        attempt (a retry holding the command's claim, or unknown again since) is left alone.
        Its command's record, while unknown, becomes ``command_answer`` (None: forgotten, so
        a retry with the command id sends it again). True when it was replaced; calling it
        again changes nothing."""
        ...

    async def settle(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        """Keep ``answer`` as the command's outcome for the command TTL.

        May return before Redis applied it: a lost answer only lets a retry ask the store.
        """
        ...

    async def unknown(self, aggregate_key: str, command_id: str | None, event_id: str) -> None:
        """The event was sent without an answer: it may still be stored. Recorded by event id
        (and by command id, unless an answer is recorded) for the command TTL; the next
        request with the command id may take the claim over."""
        ...

    async def release(self, aggregate_key: str, command_id: str, token: str) -> None:
        """Nothing was written: forget the claim of request ``token`` (only if still its)."""
        ...

    async def refused(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        """The command was refused at the door (nothing written; its claim is released, so a
        retry is judged again): keep ``answer`` for the command TTL, apart from its claim,
        for the outcome query. The newest refusal replaces an older one.

        May return before Redis applied it: a lost refusal only makes the query answer none.
        """
        ...

    async def recall_refusal(self, aggregate_key: str, command_id: str) -> bytes | None:
        """The command's last refusal at the door (``refused``), or None."""
        ...


# --- outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """An accepted event the store refused: why, for the caller who asks by id."""

    event_id: str
    aggregate_type: str
    aggregate_id: str
    event_type: str
    reason: str  # one of STORE_VERDICTS, or the reason a copy of it was dead-lettered
    message: str
    command_id: str | None
    rejected_at: datetime


STORE_VERDICTS = frozenset(("transition_rejected_at_store", "forbidden_at_store", "invalid_data"))
"""Reasons the store's judge refuses an event with. Any other reason a Rejection carries is the
fate of a dead-lettered copy (``workers.roles.fates``): no verdict on the event itself."""


class Rejections(Protocol):
    """Events the appender refused, by event id; an event stored later takes precedence."""

    async def record(self, rejections: Sequence[Rejection]) -> None:
        """Keep these (idempotent by event id: the first record stays), except that a verdict
        (a reason in STORE_VERDICTS) replaces a dead-lettered copy's fate."""
        ...

    async def find(self, event_ids: Sequence[str]) -> dict[str, Rejection]: ...


# --- sync mode ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncResult:
    """The stored event (with its version) and whether Kafka acknowledged it yet."""

    event: Event
    # False: stored, but Kafka did not acknowledge; the outbox relay will publish it.
    published: bool
    # True: the event id was already stored (a retry of a command that was applied).
    duplicate: bool = False


class SyncAppender(Protocol):
    """Sync mode: validate on the replayed state, store at the next version, then publish."""

    async def append(
        self,
        domain: Domain,
        aggregate_id: str,
        event_type: str,
        data: Mapping[str, Any],
        metadata: Metadata,
        *,
        event_id: str | None = None,
        data_checked: bool = False,
    ) -> SyncResult:
        """The stored event; raises (storing nothing) when the state or the input refuses it.

        ``event_id`` (derived from a command id) makes a retry safe: if that id is already
        stored, the stored event is returned with ``duplicate=True``. StoreOutcomeUnknown
        when the store did not answer the write (it may have been applied).
        """
        ...


# --- buses ----------------------------------------------------------------------------------


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


# --- operator actions (the console's audit trail) -------------------------------------------


PARKED = "parked"
"""The reason of a parked entry that is fine itself: it waits behind its aggregate's head."""


@dataclass(frozen=True, slots=True)
class ParkedEntry:
    """One event of a parked aggregate: it waits, in ``seq`` order, behind the head of its queue
    (the entry with the lowest ``seq``: the event that could not be stored)."""

    key: str  # "<aggregate_type>:<aggregate_id>"
    seq: int  # 1, 2, ... per aggregate: the order its entries are released in
    record: Record  # as it was taken from the events topic: what is judged when released
    reason: str  # the head's problem (a dead-letter reason); PARKED for one waiting behind it
    detail: str
    event_id: str | None  # None: the bytes are no envelope
    parked_at: datetime
    resolution: str | None = None  # on the head: "skip" or "replay" (an operator's decision)
    by: str | None = None  # "replay": the replacement event's id; "skip": the operator

    @property
    def source(self) -> str:
        """The entry's identity: where its record sits, ``<topic>/<partition>/<offset>``."""
        return f"{self.record.topic}/{self.record.partition}/{self.record.offset}"

    @property
    def replay_command_id(self) -> str:
        """The command id a replay of this entry carries (``DeadLetterEntry.command_id``)."""
        return f"dlq-replay:{self.event_id or self.source}"


def check_head(head: ParkedEntry, seq: int) -> None:
    """InvalidInput unless ``seq`` names the head of its queue."""
    if seq != head.seq:
        raise InvalidInput(
            f"entry {seq} of {head.key} waits behind the head of its queue (entry {head.seq}, "
            f"{head.reason}); replay or skip the head first: the rest is then released in order."
        )


class ParkedEvents(Protocol):
    """Aggregates parked by the appender, each with its queue (kept next to the event store)."""

    async def park(self, entries: Sequence[ParkedEntry]) -> None:
        """Keep these (idempotent by source: an entry parked before keeps its first seq)."""
        ...

    async def sources(self, sources: Sequence[str]) -> set[str]:
        """Which of these records (by source) are parked."""
        ...

    async def heads(self, keys: Sequence[str] | None = None) -> dict[str, tuple[ParkedEntry, int]]:
        """Per parked aggregate among ``keys`` (None: all): its head and its highest seq."""
        ...

    async def queue(self, key: str, *, limit: int) -> list[ParkedEntry]:
        """The first ``limit`` entries of an aggregate's queue, in seq order."""
        ...

    async def resolve(self, key: str, seq: int, resolution: str, by: str) -> ParkedEntry:
        """Set the head's resolution, once: the head as it is now (its first resolution stays).
        InvalidInput when ``seq`` is not the head's, NotFound when the aggregate has no entry."""
        ...

    async def relabel(self, source: str, reason: str, detail: str) -> None:
        """A parked entry found unfit when released: it heads its queue with this reason now."""
        ...

    async def remove(self, sources: Sequence[str]) -> None:
        """Drop released entries (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """One confirmed operator action: who did what, when, to which dead letter, and the result."""

    id: str
    at: datetime
    operator: str
    via: str  # console or cli
    action: str  # dlq_replay
    target: str  # the dead letter's position: "<partition>/<offset>" in the DLQ topic
    submitted: Mapping[str, Any]  # exactly what was re-submitted
    status: int  # the command path's HTTP-like status
    result: Mapping[str, Any]  # the command path's answer body


@dataclass(frozen=True, slots=True)
class ReplayClaim:
    """The first replay of one dead letter: a dead letter's identity is its entry, so every
    later replay of it is held against this one (the same submission: the same command, stored
    once; another one: refused)."""

    target: str  # the entry's position in the dead-letter topic: "<partition>/<offset>"
    submitted: Mapping[str, Any]  # exactly what the first replay re-submits
    operator: str
    at: datetime
    status: int | None = None  # the first replay's answer, once it has one
    result: Mapping[str, Any] | None = None


class ActionLog(Protocol):
    """The operator audit trail: append-only, newest first when read; and the first replay of
    each dead letter, claimed atomically."""

    async def record(self, action: OperatorAction) -> None:
        """Keep this action (idempotent by its id)."""
        ...

    async def recent(self, *, limit: int) -> list[OperatorAction]:
        """The newest ``limit`` actions, newest first."""
        ...

    async def claim_replay(self, claim: ReplayClaim) -> ReplayClaim | None:
        """Make ``claim`` the first replay of its target: None if it is now; else the first
        one (of any process, at any time before)."""
        ...

    async def settle_replay(self, target: str, status: int, result: Mapping[str, Any]) -> None:
        """Keep the first replay's answer with its claim."""
        ...

    async def abandon_replay(self, claim: ReplayClaim) -> None:
        """The first replay wrote nothing (refused, or nothing sent): the entry may be
        replayed again, with a corrected fix. Only this claim is removed."""
        ...


# --- personal data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataKey:
    """One subject's data key (256-bit AES-GCM), named by ``key_id`` in every value it sealed."""

    key_id: str
    subject: str
    secret: bytes


@dataclass(frozen=True, slots=True)
class Erasure:
    """A subject's erasure: when, by whom, how many keys it destroyed; ``already`` when the
    subject had been erased before and held no key since (the first erasure is answered)."""

    subject: str
    erased_at: datetime
    by: str
    keys_destroyed: int
    already: bool = False


class KeyStore(Protocol):
    """Data keys per subject, and their destruction (crypto-shredding).

    A key's secret is kept wrapped by a master key the adapter holds (MongoDB: from a file or
    an environment secret; a Vault or cloud KMS adapter would wrap and unwrap through its API).
    A subject has at most one live key; erasing replaces it by a tombstone (who, when) in one
    atomic step. StoreUnavailable when the store does not answer.
    """

    async def key_for(self, subject: str) -> DataKey:
        """The subject's live key, created on first use: concurrent callers get one key.
        After an erasure a new key is made (the subject may come back): what was sealed
        before stays unreadable."""
        ...

    async def live(self, subjects: Sequence[str]) -> dict[str, str]:
        """The key id of each subject's live key, in one read; a subject without one (never
        sealed, or erased since) is absent. Linearized with ``erase``: a call that starts after
        an ``erase`` returned never names the key it destroyed. The sealing side checks its
        cached keys with it before it seals."""
        ...

    async def find(self, key_ids: Sequence[str]) -> dict[str, DataKey]:
        """The keys of these ids; an unknown or destroyed key is absent."""
        ...

    async def erase(self, subject: str, *, by: str, at: datetime) -> Erasure | None:
        """Destroy the subject's live key and record the erasure in its place, atomically: of
        concurrent callers exactly one destroys it (``keys_destroyed`` 1); every other one,
        and any later one while no new key was made, is answered that erasure with
        ``already``. None for a subject with neither a key nor an erasure (nothing of it was
        ever sealed)."""
        ...


# --- tickets: single-use credentials for browsers on live routes ----------------------------


class TicketStore(Protocol):
    """Ticket records by digest, shared by every process of a fleet (a ticket asked at one
    process opens a connection at any other), each spent at most once fleet-wide.

    Moves records only (``workers.http.tickets`` makes and reads them). Raises
    MarkerUnavailable when the backend does not answer.
    """

    async def put(self, digest: str, record: bytes, *, keep_s: int) -> None:
        """Keep ``record`` under ``digest`` for ``keep_s`` seconds."""
        ...

    async def find(self, digest: str) -> bytes | None:
        """The record kept under ``digest``; None when none is (never put, or forgotten)."""
        ...

    async def spend(self, digest: str, *, keep_s: int) -> bool:
        """Mark ``digest`` spent: True for the first call fleet-wide (atomic), False for every
        later one while the mark is kept (``keep_s`` seconds)."""
        ...
