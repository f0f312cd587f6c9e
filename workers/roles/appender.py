"""The appender: judge each requested event at the store, number it, insert, publish, answer.

Called by the appender agent with batches of ``events`` records. Each event is checked
against its domain (data schema) and against the aggregate's last *stored* event with the
same transition table the command side uses (``workers.roles.judge``) and, with identity on
(``judge_access``), against the domain's access rules that declare a store check, with the
event's ``metadata.actor`` and the state at its predecessor; one that does not fit is refused: dead-lettered with its reason, recorded for ``GET .../outcome``, answered on
``commands.replies``, and its mark repaired. Events are stored in the order they were
validated; an event whose predecessor is still on its way waits for it, up to a bound.

``handle`` and ``expire`` return the records whose fate is decided (stored, refused or
dead-lettered): the agent acks exactly those. A waiting record stays unacked, so a crash
redelivers it; the store's unique ids make every redelivery harmless. Any Unavailable error
leaves the batch to be retried whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace

from snapshot_rules.domain import Domain, Domains, Mode
from snapshot_rules.replay import Folded
from topics.envelope import NEW_AGGREGATE, Event, command_scope, decode, utc_now
from topics.errors import (
    InvalidEnvelope,
    InvalidEventData,
    ReplayFailed,
    StoreUnavailable,
    Unavailable,
)
from workers import tracing
from workers.metrics import Metrics
from workers.ports import (
    PARKED,
    STORE_VERDICTS,
    AggregateRef,
    AppendConflict,
    CommandMemory,
    EventStore,
    Head,
    Marker,
    Outgoing,
    ParkedEntry,
    ParkedEvents,
    Producer,
    Record,
    Rejection,
    Rejections,
)
from workers.roles.deadletter import DeadLetter, DeadLetters, decode_record
from workers.roles.fates import DeadLetterFates, fate_of
from workers.roles.judge import INVALID_DATA, Refusal, Waiting, judge, missing_predecessors
from workers.roles.outcomes import Answer, Refused, encode, refusal_at_store
from workers.roles.state import StateLoader

log = logging.getLogger(__name__)

MAX_CONFLICT_ROUNDS = 20
CACHE_SIZE = 100_000
LOOKUP_IDS = 256  # ids per store lookup: a bounded call, whatever the backlog
LOOKUPS_IN_FLIGHT = 16
GAP_HOLD_S = 0.1  # how much longer an event past a gap waits before it is looked at again
PARK_POLL_S = 0.5  # how often parked heads are looked at for an operator's replay or skip
RELEASE_BATCH = 500  # parked entries judged again per aggregate and round


@dataclass(frozen=True, slots=True)
class AppenderConfig:
    """Topics and bounds of the appender."""

    stored_topic: str
    replies_topic: str
    max_event_bytes: int
    wait_s: float = 2.0  # longest an event waits for the event it was validated after
    judge_access: bool = False
    """Judge who sent each event (access rules with a store check; needs a loader): on
    whenever the HTTP door names actors (EVENTFLEET_AUTH jwt or proxy)."""


@dataclass(frozen=True, slots=True)
class _Either:
    """Ids just looked up, or remembered from earlier rounds."""

    first: set[str]
    second: _Recent

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second


class _Recent:
    """A bounded set of recently seen ids (oldest forgotten first)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, ids: Collection[str]) -> None:
        for event_id in ids:
            self._ids[event_id] = None
            self._ids.move_to_end(event_id)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids


@dataclass(slots=True)
class _Round:
    """What one decision round produced: to publish, to refuse, records decided."""

    published: list[Event] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    decided: list[Record] = field(default_factory=list)
    parents: dict[str, Sequence[tuple[str, bytes]]] = field(default_factory=dict)
    """Traced: the headers of each published event's record (the context it continues)."""


class Appender:
    """Turns requested events into stored, contiguous, versioned ones, or refuses them."""

    def __init__(
        self,
        *,
        store: EventStore,
        rejections: Rejections,
        producer: Producer,
        dead_letters: DeadLetters,
        domains: Domains,
        metrics: Metrics,
        config: AppenderConfig,
        render: Callable[[Refused], Answer],
        marker: Marker | None = None,
        memory: CommandMemory | None = None,
        loader: StateLoader | None = None,
        fates: DeadLetterFates | None = None,
        parked: ParkedEvents | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.judge_access and loader is None:
            raise ValueError("the appender judges access at the store only with a state loader")
        self._store = store
        self._rejections = rejections
        self._producer = producer
        self._dead_letters = dead_letters
        self._domains = domains
        self._metrics = metrics
        self._config = config
        self._render = render  # the runtime's answer for a refusal (commands.replies)
        self._marker = marker
        self._memory = memory
        self._loader = loader
        self._fates = fates  # an accepted event dead-lettered here: its command is told so
        self._clock = clock
        self._parked = parked  # None: a dead letter parks nothing (as before parking)
        self._owned: set[int] = set()  # partitions of the events topic assigned here
        # Parked aggregates (head, highest seq), read whole from the store after every
        # assignment and every PARK_POLL_S; kept up to date with what this process parks.
        self._known: dict[str, tuple[ParkedEntry, int]] | None = None
        # Records of parked (or parking) aggregates past a gap: parked once the gap closes,
        # so a record redelivered into the gap goes first (undecided meanwhile).
        self._held_back: list[tuple[Record, DeadLetter | Event]] = []
        self._next_poll = 0.0
        self._heads: OrderedDict[AggregateRef, Head] = OrderedDict()
        self._waiting: dict[AggregateRef, list[Waiting]] = {}
        self._stored = _Recent()
        self._refused = _Recent()
        self._unfinished: tuple[_Round, list[DeadLetter]] | None = None
        self._ready: list[Record] = []  # decided, not yet returned (see _take_ready)
        self._gap_below: Callable[[int, int], bool] = lambda partition, offset: False
        self._lock = asyncio.Lock()
        self._started_ns = 0  # when the current batch or tick began (its events' spans start)
        # Revocations that came while a batch or a tick held the lock: applied when it ends.
        self._revoked_meanwhile: list[Collection[int] | None] = []

    # --- the agent's entry points ----------------------------------------------------------

    async def handle(self, records: Sequence[Record]) -> list[Record]:
        """Take a batch; return the records decided now (waiting ones are returned later).

        Safe to call again with the same records after it raised (the agent retries while a
        dependency is down): a record already waiting here is not taken twice, and a record
        is returned only once its event is stored, refused or dead-lettered.
        """
        started = time.perf_counter()
        self._started_ns = time.time_ns()
        async with self._turn():
            await self._finish_unfinished()
            finished = {(r.partition, r.offset) for r in self._ready}
            records = [r for r in records if (r.partition, r.offset) not in finished]
            letters, refused, fresh, copies = self._decode(records)
            letters, fresh, copies, parked, urgent = await self._park(letters, fresh, copies)
            now = self._clock()
            for event, record in fresh:
                ref = (event.aggregate_type, event.aggregate_id)
                deadline = now if event.id in urgent else now + self._config.wait_s
                self._waiting.setdefault(ref, []).append(Waiting(event, record, deadline))
            for event, record in copies:
                self._attach_copy(event, record)
            refs = self._refs(fresh) + self._refs(copies)
            done = await self._decide(list(dict.fromkeys(refs)), now)
            done.refused += refused
            await self._finish(done, letters)
            if urgent:  # a parked head's replay was judged: release what waits behind it
                replayed = {e.key.decode() for e, _ in fresh if e.id in urgent}
                await self._release_parked(now, keys=replayed)
            decided = self._take_ready()
        self._metrics.append_batch_size.observe(len(records))
        self._metrics.append_latency.observe(time.perf_counter() - started)
        return decided + [letter.record for letter in letters] + done.decided + parked

    async def expire(self) -> list[Record]:
        """Judge the events whose wait is over (called on a timer); return the records decided."""
        async with self._turn():
            self._started_ns = time.time_ns()
            await self._finish_unfinished()
            now = self._clock()
            if self._poll_due():
                await self._release_parked(now)
            extra, refs = await self._park_held_back(now) if self._held_back else ([], [])
            due = [ref for ref, queue in self._waiting.items() if min_deadline(queue) <= now]
            due = list(dict.fromkeys(due + refs))
            if not due:
                return self._take_ready() + extra
            done = await self._decide(due, now)
            await self._finish(done, [])
            return self._take_ready() + extra + done.decided

    async def _park_held_back(self, now: float) -> tuple[list[Record], list[AggregateRef]]:
        """Park what was held back past a gap that has closed; the rest of it is handled as
        any record is. Returns the records decided and the aggregates of events to judge."""
        letters, fresh, _, parked, urgent = await self._park([], [], [])
        for event, record in fresh:
            deadline = now if event.id in urgent else now + self._config.wait_s
            self._waiting.setdefault((event.aggregate_type, event.aggregate_id), []).append(
                Waiting(event, record, deadline)
            )
        if letters:
            await self._finish(_Round(), letters)
        return [letter.record for letter in letters] + parked, self._refs(fresh)

    def assign(self, partitions: Collection[int]) -> None:
        """The events topic's partitions assigned here now: their parked aggregates are released
        by this process (``revoked`` partitions are dropped through ``forget``)."""
        self._owned = set(partitions)
        self._known = None  # read again: another process may have parked their aggregates
        self._next_poll = 0.0  # look at their parked heads at once

    def hold_past_gaps(self, gap_below: Callable[[int, int], bool]) -> None:
        """``gap_below(partition, offset)``: an offset below it has not reached this process yet
        (dropped on the way, and being redelivered). An event whose record lies past such a
        gap waits on after its deadline: its predecessor may be in the gap, and judging it on
        the head without it would refuse, or reorder, a valid event."""
        self._gap_below = gap_below

    def holds_work(self) -> bool:
        """Whether a tick (``expire``) may have anything to do: an event waiting, a failed
        round to finish, or decided records not yet returned. An idle appender skips its ticks."""
        return (
            bool(self._waiting)
            or self._unfinished is not None
            or bool(self._ready)
            or bool(self._held_back)
            or self._poll_due()
        )

    def _poll_due(self) -> bool:
        return self._parked is not None and bool(self._owned) and self._clock() >= self._next_poll

    def next_deadline(self) -> float | None:
        """When the earliest waiting event is due, or None when nothing waits."""
        return min((min_deadline(q) for q in self._waiting.values()), default=None)

    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One batch or tick at a time; a revocation that came meanwhile applies at its end."""
        async with self._lock:
            try:
                yield
            finally:
                while self._revoked_meanwhile:
                    self._forget_now(self._revoked_meanwhile.pop(0))

    def forget(self, partitions: Collection[int] | None = None) -> None:
        """Partitions were revoked (None: all): drop their waiting records and every head.

        Their records stay unacked and go to the partition's next owner, which may write
        to the same aggregates, so no cached head can be trusted any longer. An event also
        carried by a record of a partition kept here stays, held by that record. While a
        batch is being decided (a rebalance comes at any await), the batch's own state is
        left alone and the revocation is applied when the batch ends: dropping its waiting
        queues under it would fail it (KeyError) and stop the process.
        """
        # At once, not deferred: an assignment that follows must not be undone by it.
        self._owned = set() if partitions is None else self._owned - set(partitions)
        self._known = None
        if self._lock.locked():
            self._revoked_meanwhile.append(None if partitions is None else set(partitions))
            return
        self._forget_now(partitions)

    def _forget_now(self, partitions: Collection[int] | None) -> None:
        self._heads.clear()
        self._held_back = [  # undecided: the partition's next owner takes them again
            (r, item) for r, item in self._held_back
            if partitions is not None and r.partition not in partitions
        ]  # fmt: skip
        for ref in list(self._waiting):
            kept = []
            for w in self._waiting[ref]:
                left = [
                    r for r in w.records if partitions is not None and r.partition not in partitions
                ]
                if left:
                    kept.append(Waiting(w.event, left[0], w.deadline, tuple(left[1:])))
            self._set_waiting(ref, kept)

    # --- decoding -------------------------------------------------------------------------

    def _decode(
        self, records: Sequence[Record]
    ) -> tuple[
        list[DeadLetter], list[Refusal], list[tuple[Event, Record]], list[tuple[Event, Record]]
    ]:
        """Dead letters, refusals (invalid data), events to judge, and further records of events
        waiting here (held with them, decided with them). A record already waiting here (the
        same batch again, after an error) stays where it is."""
        letters: list[DeadLetter] = []
        refusals: dict[str, Refusal] = {}
        fresh: dict[str, tuple[Event, Record]] = {}
        copies: list[tuple[Event, Record]] = []
        for record in records:
            event = decode_record(record, max_event_bytes=self._config.max_event_bytes)
            if isinstance(event, DeadLetter):
                letters.append(event)
                continue
            problem = self._check(event)
            if problem is not None:
                letters.append(DeadLetter(record, *problem))
                continue
            if tracing.enabled() and event.metadata.trace_id is None:
                event = _with_trace_id(event, record)
            held = self._held(event, record)
            if held is not None or event.id in fresh:
                if held != "this record":
                    self._metrics.duplicates_dropped.inc()
                copies.append((event, record))
            elif event.id in refusals:  # a copy of an invalid event: refused with it
                first = refusals[event.id]
                waiting = replace(first.waiting, copies=(*first.waiting.copies, record))
                refusals[event.id] = replace(first, waiting=waiting)
            else:
                try:
                    # Stored as requested; judged as written and as the current schema version.
                    self._domains.get(event.aggregate_type).check_as_written(event)
                except (InvalidEventData, ReplayFailed) as e:
                    refusals[event.id] = Refusal(Waiting(event, record, 0.0), INVALID_DATA, str(e))
                    continue
                fresh[event.id] = (event, record)
        return letters, list(refusals.values()), list(fresh.values()), copies

    def _held(self, event: Event, record: Record) -> str | None:
        """Whether this very record, or another record of its event, waits here already."""
        for w in self._waiting.get((event.aggregate_type, event.aggregate_id), ()):
            if w.event.id == event.id:
                at = (record.partition, record.offset)
                mine = any((r.partition, r.offset) == at for r in w.records)
                return "this record" if mine else "its event"
        return None

    def _attach_copy(self, event: Event, record: Record) -> None:
        """Hold ``record`` with the waiting event it carries (no-op if it is held already)."""
        queue = self._waiting.get((event.aggregate_type, event.aggregate_id), [])
        for i, w in enumerate(queue):
            if w.event.id != event.id:
                continue
            if all((r.partition, r.offset) != (record.partition, record.offset) for r in w.records):
                queue[i] = Waiting(w.event, w.record, w.deadline, (*w.copies, record))
            return

    def _check(self, event: Event) -> tuple[str, str] | None:
        if event.aggregate_type not in self._domains:
            return "unknown_aggregate_type", f"no domain {event.aggregate_type!r}"
        domain = self._domains.get(event.aggregate_type)
        if domain.mode is not Mode.ASYNC:
            writer = "EventSourcedStorage" if domain.mode is Mode.STORAGE else "the command path"
            return (
                "invalid",
                f"{domain.name} is a {domain.mode} domain; its events are written by {writer}",
            )
        if event.type not in domain.events:
            return "unknown_event_type", f"{domain.name} has no event type {event.type!r}"
        if event.version is not None:
            return (
                "already_versioned",
                f"events on this topic carry no version, got {event.version}",
            )
        known = domain.schema_version(event.type)
        if event.schema_version > known:  # written by newer code: re-submit once it runs here
            return (
                "unknown_schema_version",
                f"{event.type} schema version {event.schema_version} is newer than this "
                f"appender's {known}; deploy the code that declares it, then re-submit",
            )
        return None

    @staticmethod
    def _refs(pairs: Sequence[tuple[Event, Record]]) -> list[AggregateRef]:
        return [(event.aggregate_type, event.aggregate_id) for event, _ in pairs]

    # --- parking --------------------------------------------------------------------------

    def _parkable_key(self, letter: DeadLetter) -> str | None:
        """The aggregate a dead letter parks (from its record's key): one of an async domain."""
        raw = letter.record.key
        if raw is None:
            return None
        try:
            key = raw.decode()
        except UnicodeDecodeError:
            return None
        aggregate_type, sep, aggregate_id = key.partition(":")
        if not sep or not aggregate_id or aggregate_type not in self._domains:
            return None
        return key if self._domains.get(aggregate_type).mode is Mode.ASYNC else None

    async def _park(
        self,
        letters: list[DeadLetter],
        fresh: list[tuple[Event, Record]],
        copies: list[tuple[Event, Record]],
    ) -> tuple[
        list[DeadLetter], list[tuple[Event, Record]], list[tuple[Event, Record]], list[Record],
        set[str],
    ]:  # fmt: skip
        """Park what cannot be stored, and what follows it on its aggregate.

        A dead letter whose record names an aggregate of an async domain parks that aggregate:
        it heads a queue kept next to the event store (``ParkedEvents``), and every later event
        of the aggregate joins the queue in order instead of being judged against a history
        with a hole. A replay of the head (its command id is the head's ``replay_command_id``)
        is judged at once; the head is then resolved and the queue released (``_release``).
        Returns the letters, events and copies left to handle, the records parked (decided:
        durably in the queue and on the dead-letter topic) and the ids of replays to judge now.
        A copy of an event parked here is decided with it; records of a parked aggregate past
        a gap are held back until it closes (``_held_back``).
        """
        if self._parked is None or not (letters or fresh or self._held_back):
            return letters, fresh, copies, [], set()
        batch = {(r.partition, r.offset) for r in [ltr.record for ltr in letters]}
        batch |= {(r.partition, r.offset) for _, r in [*fresh, *copies]}
        kept, self._held_back = self._held_back, []
        # A record held back and taken again in this batch (a batch retried) is taken once.
        held_back = [(r, item) for r, item in kept if (r.partition, r.offset) not in batch]
        try:
            letters, fresh, copies, parked, urgent = await self._park_now(
                letters, fresh, copies, held_back
            )
        except BaseException:  # the batch is handled again; what was held back stays so
            self._held_back = kept
            raise
        # What was held back came with an earlier call: it is in no batch the agent retries,
        # so what of it is decided now is kept (``_ready``) before anything else can fail,
        # or a failure later in this call would lose it and its partition's commits stop.
        earlier = {(r.partition, r.offset) for r, _ in held_back}
        self._ready += [r for r in parked if (r.partition, r.offset) in earlier]
        parked = [r for r in parked if (r.partition, r.offset) not in earlier]
        theirs = [ltr for ltr in letters if (ltr.record.partition, ltr.record.offset) in earlier]
        letters = [
            ltr for ltr in letters if (ltr.record.partition, ltr.record.offset) not in earlier
        ]
        if theirs:  # if this fails, the round is finished first by the next call (``_finish``)
            await self._finish(_Round(), theirs)
            self._ready += [ltr.record for ltr in theirs]
        return letters, fresh, copies, parked, urgent

    async def _park_now(
        self,
        letters: list[DeadLetter],
        fresh: list[tuple[Event, Record]],
        copies: list[tuple[Event, Record]],
        held_back: list[tuple[Record, DeadLetter | Event]],
    ) -> tuple[
        list[DeadLetter], list[tuple[Event, Record]], list[tuple[Event, Record]], list[Record],
        set[str],
    ]:  # fmt: skip
        assert self._parked is not None  # checked by _park
        letters = letters + [item for _, item in held_back if isinstance(item, DeadLetter)]
        fresh = fresh + [(item, r) for r, item in held_back if not isinstance(item, DeadLetter)]
        starting = {id(letter): self._parkable_key(letter) for letter in letters}
        await self._copies_park_nothing(letters, starting)
        keys = {k for k in starting.values() if k is not None}
        keys |= {event.key.decode() for event, _ in fresh}
        if self._known is None:
            self._known = await self._parked.heads()
        known = self._known
        heads = {key: known[key] for key in keys if key in known}
        if not heads and not any(starting.values()):
            return letters, fresh, copies, [], set()
        items: list[tuple[Record, DeadLetter | Event]] = [(ltr.record, ltr) for ltr in letters]
        items += [(record, event) for event, record in fresh]
        copy_at = {(r.partition, r.offset) for _, r in copies}
        items += [(record, event) for event, record in copies]
        items.sort(key=lambda item: (item[0].partition, item[0].offset))
        candidates = [
            item for item in items
            if (starting.get(id(item[1])) if isinstance(item[1], DeadLetter)
                else item[1].key.decode() in heads)
        ]  # fmt: skip
        already = await self._parked.sources(
            [f"{r.topic}/{r.partition}/{r.offset}" for r, _ in candidates]
        )
        tails = {key: last for key, (_, last) in heads.items()}
        at = utc_now()
        entries: list[tuple[ParkedEntry, DeadLetter]] = []
        kept_letters: list[DeadLetter] = []
        kept_fresh: list[tuple[Event, Record]] = []
        kept_copies: list[tuple[Event, Record]] = []
        parked: list[Record] = []
        parked_ids: set[str] = set()
        urgent: set[str] = set()
        replays: list[tuple[ParkedEntry, str]] = []
        holding: set[str] = set()
        for record, item in items:
            source = f"{record.topic}/{record.partition}/{record.offset}"
            key_of = starting[id(item)] if isinstance(item, DeadLetter) else item.key.decode()
            if (record.partition, record.offset) in copy_at and not isinstance(item, DeadLetter):
                if item.id in parked_ids:  # its event is parked: decided with it
                    parked.append(record)
                    continue
                if key_of not in holding and key_of not in heads:
                    kept_copies.append((item, record))  # held with its waiting event
                    continue
            if key_of is not None and (key_of in holding or (
                (key_of in heads or isinstance(item, DeadLetter))
                and self._gap_below(record.partition, record.offset)
            )):  # fmt: skip
                holding.add(key_of)  # a record redelivered into the gap may go first
                self._held_back.append((record, item))
                continue
            if isinstance(item, DeadLetter):
                key = starting[id(item)]
                if key is None:
                    kept_letters.append(item)
                    continue
                reason, detail, event_id = item.reason, item.detail, _event_id(record)
            else:
                key = item.key.decode()
                head = heads[key][0] if key in heads else None
                if head is None:
                    kept_fresh.append((item, record))
                    continue
                if item.metadata.command_id == head.replay_command_id and (
                    head.resolution is None or head.by == item.id
                ):  # the head's replay: judged now, on the stored head
                    kept_fresh.append((item, record))
                    urgent.add(item.id)
                    if head.resolution is None:
                        replays.append((head, item.id))
                    continue
                reason, event_id = PARKED, item.id
                parked_ids.add(item.id)
                detail = f"{key} is parked behind {head.source} ({head.reason}); it waits in order"
            parked.append(record)
            if source in already:
                continue  # parked before (a redelivery): its entry keeps its first seq
            seq = tails.get(key, 0) + 1
            tails[key] = seq
            entry = ParkedEntry(key, seq, record, reason, detail, event_id, at)
            entries.append((entry, DeadLetter(record, reason, detail, parked=(key, seq))))
            if key not in heads:
                heads[key] = (entry, seq)
        poison = [letter for _, letter in entries if letter.reason != PARKED]
        if poison and self._fates is not None:  # its command is told, as for any dead letter
            held = {w.event.id for queue in self._waiting.values() for w in queue}
            await self._fates.record(poison, held=held)
        if entries:
            await self._dead_letters.send([letter for _, letter in entries])
            await self._parked.park([entry for entry, _ in entries])
        resolved = {}
        for head, replay_id in replays:
            resolved[head.key] = await self._parked.resolve(head.key, head.seq, "replay", replay_id)
        for key, (head, _) in heads.items():  # written: this process knows them from now on
            known[key] = (resolved.get(key, head), tails.get(key, 0))
        for entry, _ in entries:
            if entry.seq == 1:  # a queue starts: the aggregate is parked
                self._metrics.aggregates_parked.labels("appender", entry.reason).inc()
            log.info("parked %s #%d (%s): %s", entry.key, entry.seq, entry.reason, entry.source)
        return kept_letters, kept_fresh, kept_copies, parked, urgent

    async def _copies_park_nothing(
        self, letters: list[DeadLetter], starting: dict[int, str | None]
    ) -> None:
        """A dead-lettered copy of an event that is stored, refused or waits here (a garbled or
        oversized copy of it) leaves no hole: it parks nothing, and is dead-lettered as before."""
        events = {id(ltr): fate_of(ltr) for ltr in letters if starting.get(id(ltr)) is not None}
        ids = {i: f.rejection.event_id for i, f in events.items() if f is not None}
        if not ids:
            return
        held = {w.event.id for queue in self._waiting.values() for w in queue}
        unknown = sorted({e for e in ids.values() if e not in held and e not in self._stored})
        refs = [
            (f.rejection.aggregate_type, f.rejection.aggregate_id)
            for f in events.values() if f is not None
        ]  # fmt: skip
        stored = set(await self._store.find(unknown, aggregates=list(dict.fromkeys(refs))))
        judged = set(await self._find_refused([e for e in unknown if e not in stored]))
        gone = held | stored | judged
        for i, event_id in ids.items():
            if event_id in gone or event_id in self._stored or event_id in self._refused:
                starting[i] = None

    async def _release_parked(self, now: float, *, keys: Collection[str] | None = None) -> None:
        """Release the queues of this process's parked aggregates (all, or ``keys``) whose head
        was resolved."""
        assert self._parked is not None
        if keys is None:
            self._next_poll = now + PARK_POLL_S
        heads = await self._parked.heads(None if keys is None else sorted(keys))
        if keys is None:
            self._known = dict(heads)
        for key, (head, _) in heads.items():
            if head.record.partition in self._owned:
                await self._release(key, head, now)

    async def _release(self, key: str, head: ParkedEntry, now: float) -> None:
        """Judge again, in order, the entries behind a resolved head (skipped, or replaced by a
        replay that was decided), up to the next entry that cannot be stored: it heads the
        queue from then on. The entries leave the queue once their fates are written down."""
        assert self._parked is not None
        aggregate_type, _, aggregate_id = key.partition(":")
        ref: AggregateRef = (aggregate_type, aggregate_id)
        if head.resolution == "replay" and head.by is not None:
            if not await self._decided(ref, head.by):
                return  # the replay waits here still
        elif head.resolution != "skip" and head.reason != PARKED:
            return  # the head waits for an operator
        queue = await self._parked.queue(key, limit=RELEASE_BATCH)
        removed = [e.source for e in queue[:1] if e.source == head.source and e.resolution]
        waiting_ids = {w.event.id for w in self._waiting.get(ref, ())}
        released: list[tuple[ParkedEntry, Event]] = []
        for entry in queue[len(removed) :]:
            if entry.reason != PARKED:
                break  # a dead letter itself: the new head, it waits for an operator
            event = decode_record(entry.record, max_event_bytes=self._config.max_event_bytes)
            problem = (
                (event.reason, event.detail) if isinstance(event, DeadLetter) else self._check(event)
            )
            if problem is not None:  # cannot be taken now (the domains changed): the new head
                letter = DeadLetter(entry.record, *problem, parked=(key, entry.seq))
                if self._fates is not None:
                    await self._fates.record([letter], held=waiting_ids)
                await self._dead_letters.send([letter])
                await self._parked.relabel(entry.source, *problem)
                break
            assert not isinstance(event, DeadLetter)
            if event.id not in waiting_ids:  # one still waiting from the last round stays
                released.append((entry, event))
        if released:
            self._waiting.setdefault(ref, []).extend(
                Waiting(event, entry.record, now) for entry, event in released
            )
            done = await self._decide([ref], now)
            await self._finish(done, [])
            ours = {(e.record.partition, e.record.offset) for e, _ in released}
            # Parked records were acked when parked: only others decided with them are returned.
            self._ready += [r for r in done.decided if (r.partition, r.offset) not in ours]
        decided = [e.source for e, ev in released if ev.id in self._stored or ev.id in self._refused]
        await self._parked.remove(removed + decided)
        if self._known is not None:  # what is left of the queue, if anything
            left = await self._parked.heads([key])
            if key in left:
                self._known[key] = left[key]
            else:
                self._known.pop(key, None)
        if removed or decided:
            log.info("released %d parked events of %s (head %s: %s)",
                     len(decided), key, head.source, head.resolution or "released")  # fmt: skip

    async def _decided(self, ref: AggregateRef, event_id: str) -> bool:
        """Whether an event is stored or refused (known here, or looked up)."""
        if event_id in self._stored or event_id in self._refused:
            return True
        if await self._store.find([event_id], aggregates=[ref]):
            return True
        return bool(await self._find_refused([event_id]))

    # --- deciding -------------------------------------------------------------------------

    async def _decide(self, refs: list[AggregateRef], now: float) -> _Round:
        """Judge, number and insert the waiting events of ``refs``; retry lost version races.

        If a store call fails, every event of ``refs`` waits again as before the call (one
        that was inserted meanwhile is found stored by the next attempt): no record is ever
        dropped without a decision.
        """
        self._hold_past_gaps(refs, now)
        before = {ref: list(self._waiting.get(ref, ())) for ref in refs}
        try:
            return await self._decide_rounds(refs, now)
        except BaseException:
            for ref, queue in before.items():
                self._set_waiting(ref, queue)
            self._heads.clear()  # what was stored meanwhile is read again
            raise

    def _hold_past_gaps(self, refs: list[AggregateRef], now: float) -> None:
        """Events due now whose records lie past a gap wait a little longer (``hold_past_gaps``)."""
        for ref in refs:
            queue = self._waiting.get(ref)
            if not queue or all(w.deadline > now for w in queue):
                continue
            self._waiting[ref] = [
                Waiting(w.event, w.record, now + GAP_HOLD_S, w.copies)
                if w.deadline <= now and self._gap_below(w.record.partition, w.record.offset)
                else w
                for w in queue
            ]

    async def _decide_rounds(self, refs: list[AggregateRef], now: float) -> _Round:
        done = _Round()
        for _ in range(MAX_CONFLICT_ROUNDS):
            refs = [ref for ref in refs if self._waiting.get(ref)]
            if not refs:
                return done
            await self._load_heads(refs)
            stored_ids, refused_ids = await self._look_up(refs, done)
            to_store: list[Waiting] = []
            for ref in refs:
                queue = self._waiting.get(ref, [])
                if not queue:
                    continue
                domain = self._domains.get(ref[0])
                state = await self._state_at_head(domain, ref, queue)
                verdicts = judge(
                    domain,
                    self._heads.get(ref),
                    queue,
                    now=now,
                    stored=_Either(stored_ids, self._stored),
                    refused=_Either(refused_ids, self._refused),
                    state=state,
                )
                self._count_waits(queue, verdicts.wait, now)
                done.refused += verdicts.refuse
                to_store += verdicts.store
                self._set_waiting(ref, verdicts.wait)
            conflicted = await self._insert(to_store, done)
            if not conflicted:
                return done
            refs = conflicted
        raise StoreUnavailable(
            f"gave up after {MAX_CONFLICT_ROUNDS} version conflicts in one batch; "
            "another writer keeps appending to the same aggregates."
        )

    async def _state_at_head(
        self, domain: Domain, ref: AggregateRef, queue: Sequence[Waiting]
    ) -> Folded | None:
        """The state at the head when an event waiting here is judged on who sent it, else None.

        Only event types whose access rule declares a store check cost this read (the chat's
        edits and deletes): snapshot + the events after it, as the command side reads it.
        """
        if not self._config.judge_access or not any(
            domain.access.judged_at_store(w.event.type) for w in queue
        ):
            return None
        assert self._loader is not None  # checked at construction
        for _ in range(2):
            folded = await self._loader.latest(domain, ref[1], trigger="validation")
            head = self._heads.get(ref)
            if folded.version == (head.version if head else 0):
                return folded
            self._heads.pop(ref, None)  # another writer appended: read the head again
            await self._load_heads([ref])
        raise StoreUnavailable(
            f"{domain.name} {ref[1]}: its state and its head disagree twice in a row; another "
            "writer keeps appending to it. The events wait and are judged again."
        )

    async def _load_heads(self, refs: list[AggregateRef]) -> None:
        unknown = [ref for ref in refs if ref not in self._heads]
        if unknown:
            found = await self._store.heads(unknown)
            for ref in unknown:
                if ref in found:
                    self._remember_head(ref, found[ref])

    async def _look_up(self, refs: list[AggregateRef], done: _Round) -> tuple[set[str], set[str]]:
        """Ask the store about ids the judge cannot place, and drop events already stored.

        Only events off the common path need it: a predecessor that is not the head, or an
        event not chained from the head through the events waiting before it (a redelivery,
        a direct producer). An event whose predecessor is the head, or waits here unstored,
        cannot have been stored itself: versions are contiguous.
        """
        asks: dict[AggregateRef, set[str]] = {}
        for ref in refs:
            queue = self._waiting[ref]
            head = self._heads.get(ref)
            wanted = missing_predecessors(head, queue)
            ask = {a for a in wanted if a not in self._stored and a not in self._refused}
            chained = {head.event_id} if head is not None else {NEW_AGGREGATE}
            for w in queue:
                if w.event.id in self._stored or w.event.id in self._refused:
                    ask.add(w.event.id)  # decided before (a retried batch): take that decision
                elif w.event.after in chained:
                    chained.add(w.event.id)  # follows the head through unstored events
                elif head is not None:
                    ask.add(w.event.id)  # off the common path: maybe a redelivery
            if ask:
                asks[ref] = ask
        if not asks:
            return set(), set()
        found = await self._find_stored(asks)
        refused = await self._find_refused(
            sorted(set().union(*asks.values()) - set(found))
        )
        self._stored.add(found)
        self._refused.add(refused)
        for ref in refs:  # redelivered: stored already; republish (a crash may have cut it)
            queue = self._waiting[ref]
            again = [w for w in queue if w.event.id in found or w.event.id in refused]
            for w in again:
                if w.event.id in found:
                    done.published.append(found[w.event.id])
                    self._metrics.duplicates_dropped.inc()
                done.decided += w.records
            self._set_waiting(ref, [w for w in queue if w not in again])
        return set(found), set(refused)

    async def _find_stored(self, asks: dict[AggregateRef, set[str]]) -> dict[str, Event]:
        """One lookup per aggregate (it names the shard key and walks the aggregate's index),
        at most LOOKUPS_IN_FLIGHT at once, each of at most LOOKUP_IDS ids: a backlog after a
        stall or a rebalance is many small bounded calls, never one that outlasts its timeout."""
        calls = [
            (ref, ids[i : i + LOOKUP_IDS])
            for ref, wanted in asks.items()
            for ids in [sorted(wanted)]
            for i in range(0, len(ids), LOOKUP_IDS)
        ]
        found: dict[str, Event] = {}
        for start in range(0, len(calls), LOOKUPS_IN_FLIGHT):
            answers = await asyncio.gather(
                *(
                    self._store.find(ids, aggregates=[ref])
                    for ref, ids in calls[start : start + LOOKUPS_IN_FLIGHT]
                )
            )
            for answer in answers:
                found.update(answer)
        return found

    async def _find_refused(self, ids: list[str]) -> dict[str, Rejection]:
        refused: dict[str, Rejection] = {}
        for i in range(0, len(ids), LOOKUP_IDS):
            refused.update(await self._rejections.find(ids[i : i + LOOKUP_IDS]))
        # A dead-lettered copy's fate (workers.roles.fates) is no verdict on the event: a
        # readable copy, redelivered from before it, is judged.
        return {i: r for i, r in refused.items() if r.reason in STORE_VERDICTS}

    async def _insert(self, to_store: list[Waiting], done: _Round) -> list[AggregateRef]:
        """Number and insert; returns aggregates whose version another writer took first."""
        if not to_store:
            return []
        numbered = self._number(to_store)
        try:
            await self._store.append(numbered)
        except AppendConflict as conflict:
            inserted = numbered[: conflict.inserted]
            self._stored_now(inserted, to_store[: conflict.inserted], done)
            rest = to_store[conflict.inserted :]
            failed = conflict.failed
            ref = (failed.aggregate_type, failed.aggregate_id)
            self._heads.pop(ref, None)  # re-read: another writer (or a redelivery) got there
            for w in reversed(rest):  # back to the front of their queues, in order
                key = (w.event.aggregate_type, w.event.aggregate_id)
                self._waiting.setdefault(key, []).insert(0, w)
                self._heads.pop(key, None)
            return list(dict.fromkeys((w.event.aggregate_type, w.event.aggregate_id) for w in rest))
        self._stored_now(numbered, to_store, done)
        return []

    def _number(self, to_store: list[Waiting]) -> list[Event]:
        """Each event the next version of its aggregate: after its cached head, or 1. Only the
        batch's aggregates are looked up (copying every cached head, up to CACHE_SIZE, cost
        each batch as much as the cache held)."""
        versions: dict[AggregateRef, int] = {}
        numbered = []
        for w in to_store:
            ref = (w.event.aggregate_type, w.event.aggregate_id)
            version = versions.get(ref)
            if version is None:
                head = self._heads.get(ref)
                version = head.version if head is not None else 0
            versions[ref] = version + 1
            numbered.append(w.event.with_version(version + 1))
        return numbered

    def _stored_now(self, events: list[Event], waiting: list[Waiting], done: _Round) -> None:
        for event in events:
            self._remember_head(
                (event.aggregate_type, event.aggregate_id),
                Head(event.version or 0, event.id, event.type),
            )
        self._stored.add([event.id for event in events])
        done.published += events
        done.decided += [r for w in waiting for r in w.records]
        if tracing.enabled():
            done.parents.update((w.event.id, w.record.headers) for w in waiting)
        counts: dict[str, int] = {}
        for event in events:
            counts[event.aggregate_type] = counts.get(event.aggregate_type, 0) + 1
        for aggregate_type, count in counts.items():
            self._metrics.events_appended.labels(aggregate_type).inc(count)

    def _remember_head(self, ref: AggregateRef, head: Head) -> None:
        self._heads[ref] = head
        self._heads.move_to_end(ref)
        while len(self._heads) > CACHE_SIZE:
            self._heads.popitem(last=False)

    def _set_waiting(self, ref: AggregateRef, queue: list[Waiting]) -> None:
        if queue:
            self._waiting[ref] = queue
        else:
            self._waiting.pop(ref, None)

    def _count_waits(self, before: list[Waiting], after: list[Waiting], now: float) -> None:
        """Events that had waited and are decided now: how long they waited, and why."""
        left = {w.event.id for w in after}
        for w in before:
            waited = now - (w.deadline - self._config.wait_s)
            if w.event.id not in left and waited > 0.0005:
                outcome = "expired" if w.deadline <= now else "arrived"
                self._metrics.append_waits.labels(outcome).inc()
                self._metrics.append_wait.observe(waited)

    # --- effects --------------------------------------------------------------------------

    async def _finish(self, done: _Round, letters: list[DeadLetter]) -> None:
        """Make every decision known, then let the records be acked: refusals first.

        If an effect fails, the whole round is kept and finished first by the next call:
        its records are decided only once every effect is done (each one is idempotent).
        """
        try:
            if done.refused:
                await self._refuse(done.refused)
            if letters:
                if self._fates is not None:
                    held = {w.event.id for queue in self._waiting.values() for w in queue}
                    await self._fates.record(letters, held=held)
                await self._dead_letters.send(letters)
            if done.published:
                published = sorted(done.published, key=_position)
                await self._publish(published, done.parents)
                self._metrics.events_published.labels("async").inc(len(published))
                await self._note_new_aggregates(published)
        except BaseException:
            self._unfinished = (done, letters)
            raise
        done.decided += [r for refusal in done.refused for r in refusal.waiting.records]

    async def _publish(
        self, published: list[Event], parents: dict[str, Sequence[tuple[str, bytes]]]
    ) -> None:
        """Produce the stored events to events.stored. Traced: one span per event (the child of
        its record's context, from the batch's start until the ack), whose context the
        events.stored record carries."""
        topic = self._config.stored_topic
        if not tracing.enabled():
            await self._producer.send_many(topic, [Outgoing.of(e) for e in published])
            return
        spans: list[tracing.Span | None] = []
        messages = []
        for e in published:
            own = Outgoing.of(e)
            record = parents.get(e.id, ())
            if tracing.sampled(record) is False:  # an unsampled trace: passed on, no span
                spans.append(None)
                messages.append(Outgoing(own.key, own.value, tracing.carried(own.headers, record)))
                continue
            span = tracing.start(
                "appender store",
                parent=tracing.parent_for(e.metadata.trace_id, e.id, record),
                kind=tracing.SpanKind.CONSUMER,
                attributes={"eventfleet.event_id": e.id, "eventfleet.version": e.version or 0},
                start_time_ns=self._started_ns or None,
            )
            spans.append(span)
            messages.append(Outgoing(own.key, own.value, tracing.with_context(own.headers, span)))
        try:
            await self._producer.send_many(topic, messages)
        except BaseException as error:
            for span in spans:
                tracing.fail(span, "publish_failed", f"{type(error).__name__}: {error}")
            raise
        finally:
            tracing.end(spans)

    async def _finish_unfinished(self) -> None:
        """Finish the effects of a round that failed last time; its records are ready to be
        returned (``_take_ready``)."""
        if self._unfinished is None:
            return
        done, letters = self._unfinished
        self._unfinished = None
        await self._finish(done, letters)
        self._ready += [letter.record for letter in letters] + done.decided

    def _take_ready(self) -> list[Record]:
        """Records decided by an earlier call that could not return them (it failed after
        finishing a round): they are returned by the next call that succeeds, never lost, or
        their partition's commits would stop at them for good."""
        ready, self._ready = self._ready, []
        return ready

    async def _refuse(self, refusals: list[Refusal]) -> None:
        """Repair marks that name them, then record, dead-letter and answer each refusal.

        The repair comes first: once a refusal is visible (its outcome, its reply), a client's
        next request must be checked against the stored head, not the refused event's mark.
        The command memory learns the refusal too, so a retry of the command is told of it.
        """
        await self._repair_marks(refusals)
        at = utc_now()
        rejections = [
            Rejection(
                event_id=r.waiting.event.id,
                aggregate_type=r.waiting.event.aggregate_type,
                aggregate_id=r.waiting.event.aggregate_id,
                event_type=r.waiting.event.type,
                reason=r.reason,
                message=r.message,
                command_id=r.waiting.event.metadata.command_id,
                rejected_at=at,
            )
            for r in refusals
        ]
        await self._rejections.record(rejections)
        self._refused.add([r.waiting.event.id for r in refusals])
        outcomes = [refusal_at_store(rejection) for rejection in rejections]
        if self._memory is not None:
            for r, outcome in zip(refusals, outcomes, strict=True):
                await self._remember(r.waiting.event, outcome)
        await self._dead_letters.send([DeadLetter(r.waiting.record, r.reason, r.message) for r in refusals])
        replies = [
            Outgoing(r.waiting.record.key, self._render(outcome).encode(), r.waiting.record.headers)
            for r, outcome in zip(refusals, outcomes, strict=True)
        ]
        await self._producer.send_many(self._config.replies_topic, replies)
        for r in refusals:
            event = r.waiting.event
            self._metrics.store_rejections.labels(event.aggregate_type, r.reason).inc()
            log.info("refused %s %s %s: %s", event.aggregate_type, event.aggregate_id, event.id, r.message)

    async def _remember(self, event: Event, outcome: Refused) -> None:
        """Best effort: a retry that finds no record asks the rejections anyway."""
        command_id = event.metadata.command_id
        if self._memory is None or command_id is None:
            return
        try:
            scoped = command_scope(command_id, event.metadata.actor)  # its sender's command
            await self._memory.settle(event.key.decode(), scoped, encode(outcome))
        except Unavailable as e:
            log.warning("refusal of command %s not recorded in the memory: %s", command_id, e)

    async def _note_new_aggregates(self, published: list[Event]) -> None:
        """Aggregates whose first event was just stored: the new-aggregate filter learns them."""
        firsts = [e.key.decode() for e in published if e.version == 1]
        if self._marker is None or not firsts:
            return
        try:
            await self._marker.note_aggregates(firsts)
        except Unavailable as e:  # a missed bit costs one store read, never a wrong answer
            log.warning("%d new aggregates not noted in the filter: %s", len(firsts), e)

    async def _repair_marks(self, refusals: list[Refusal]) -> None:
        if self._marker is None:
            return
        for r in refusals:
            event = r.waiting.event
            ref = (event.aggregate_type, event.aggregate_id)
            try:
                await self._marker.repair(event.key.decode(), event.id, self._heads.get(ref))
            except Unavailable as e:  # only a cache: a wrong mark is judged here again
                log.warning("mark of %s %s not repaired: %s", ref[0], ref[1], e)


def _event_id(record: Record) -> str | None:
    """The id of the event a dead-lettered record carries, if it can be read."""
    try:
        return decode(record.value).id
    except InvalidEnvelope:
        return None


def _with_trace_id(event: Event, record: Record) -> Event:
    """The event with the trace id its record's context names in its metadata (the stored
    event keeps it); the event itself when the record carries no valid context."""
    trace_id = tracing.trace_id_of(record.headers)
    if trace_id is None:
        return event
    metadata = replace(event.metadata, trace_id=trace_id)
    return Event(
        event.id, event.aggregate_type, event.aggregate_id, event.type, event.data,
        event.version, metadata, event.occurred_at, event.after, event.schema_version,
    )  # fmt: skip


def min_deadline(queue: Sequence[Waiting]) -> float:
    return min(w.deadline for w in queue)


def _position(event: Event) -> tuple[str, str, int]:
    return (event.aggregate_type, event.aggregate_id, event.version or 0)
