"""A marker's refusal is checked against the store before it is answered: a 409 is always true.

The mark may name an event that is still in flight, one the store refused, a phantom whose
produce never reached Kafka, or be missing altogether after Redis lost its state; the store's
head may trail events in flight, and a filter rebuilt after Redis lost its state misses the
creations still in flight. So a refusal is answered at once only when the mark names the
store's head. Otherwise the
aggregate is judged on the store's *settled* head: once the appender has decided every event
its partition held (``AppendProgress``), the head is the truth; the event is refused against
it, or marked over the stale view and accepted. If the appender does not catch up within the
bound, the answer is "nothing written, retry" (503), never a refusal that may be false.

While it waits, the store's head is read again whenever the live feed announces a stored event
of the aggregate: once the appender has stored the marked event, the mark names the head and the
refusal is answered then, not at the appender's next commit (a busy appender commits every
``EVENTFLEET_KAFKA_COMMIT_INTERVAL_MS``). An announcement lost (the feed is best effort) only
leaves the answer to the commit.

An expected version the marker's count refutes (``wrong_version``) is checked the same way,
with one shortcut: a store whose head is already past the expectation refutes it for good
(versions only grow), so that refusal needs no settled head.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from snapshot_rules.domain import Domain
from topics.envelope import NEW_AGGREGATE, Event
from topics.errors import TransitionRejected, WrongExpectedVersion
from workers.ports import (
    AppendProgress,
    EventStore,
    Listening,
    LiveChannel,
    LiveFeed,
    MarkRequest,
    MarkResult,
    stop_once_subscribed,
)
from workers.roles.command.ledger import CommandLedger
from workers.roles.command.told import refused
from workers.roles.outcomes import NotDone, Outcome, Refused

if TYPE_CHECKING:
    from prometheus_client import Counter  # the metric it counts the decisions on

T = TypeVar("T")

ROUNDS = 3
"""Re-checks when another request marks the aggregate while this one is being checked."""


class RefusalCheck:
    """Turns a marker's refusal into a true answer (or a re-mark the store's head allows)."""

    def __init__(
        self,
        *,
        ledger: CommandLedger,
        store: EventStore,
        progress: AppendProgress,
        wait_s: float,
        checks: Counter,
        feed: LiveFeed | None = None,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._progress = progress
        self._wait_s = wait_s
        self._checks = checks
        self._feed = feed

    async def verify(
        self, domain: Domain, aggregate_id: str, mark: MarkRequest, result: MarkResult
    ) -> Outcome | tuple[MarkRequest, MarkResult]:
        """A true refusal, NotDone, or (mark, result) marked on the settled head: produce it."""
        for _ in range(ROUNDS):
            at_once = await self._on_the_head(domain, aggregate_id, mark, result)
            if at_once is not None:
                return self._decided("head", at_once)
            # In flight, refused at the store, a phantom, a store head that may trail the
            # stream, or the filter's "new" (rebuilt after Redis lost it, it misses creations
            # still in flight): the settled head decides.
            stale = result.previous
            settled = await self._settled_head(domain, aggregate_id, mark, result)
            if not isinstance(settled, _Head):
                return settled
            refused = judge(domain, aggregate_id, settled.event, mark)
            if refused is not None:
                return self._decided("settled", refused)
            remark = replace(mark, fallback=fallback_of(settled.event), replace=stale)
            result = await self._ledger.claim_and_mark(remark)
            if result.status in ("marked", "mine"):
                return self._decided("remarked", (remark, result))
            mark = remark
        return self._decided("not_yet", _not_yet(domain, aggregate_id))

    def _decided(self, how: str, outcome: T) -> T:
        """``outcome``, counted by what decided it (``REFUSAL_DECISIONS``)."""
        self._checks.labels(how).inc()
        return outcome

    async def _head(self, domain: Domain, aggregate_id: str) -> Event | None:
        """The newest stored event of the aggregate, None when it has none."""
        ref = (domain.name, aggregate_id)
        return next(iter(await self._store.select(ref, desc=True, limit=1)), None)

    async def _on_the_head(
        self, domain: Domain, aggregate_id: str, mark: MarkRequest, result: MarkResult
    ) -> Refused | None:
        """The refusal the store's head proves as it stands, or None: it proves nothing yet.

        A head past the expected version refutes it for good (versions only grow); a head
        that is the marked event is the state the marker refused the request against."""
        head = await self._head(domain, aggregate_id)
        if head is None:
            return None
        expected = mark.expected_version
        if expected is not None and (head.version or 0) > expected:
            return _wrong_version(domain, aggregate_id, expected, head.version or 0)
        if result.previous and head.id == result.after:
            return judge(domain, aggregate_id, head, mark)
        return None

    async def _settled_head(
        self, domain: Domain, aggregate_id: str, mark: MarkRequest, result: MarkResult
    ) -> _Head | Outcome:
        """The store's head once the appender has caught up (NotDone at the bound); sooner, the
        refusal the head proves once the live feed announces a stored event of the aggregate:
        the appender stores an event well before its group commits past it."""
        announced = asyncio.Event()
        subscribing = self._listen(domain.name, aggregate_id, announced)
        key = mark.aggregate_key.encode()
        caught_up = asyncio.ensure_future(self._progress.caught_up(key, within_s=self._wait_s))
        try:
            while not await _caught_up_first(caught_up, announced):
                announced.clear()
                at_once = await self._on_the_head(domain, aggregate_id, mark, result)
                if at_once is not None:
                    return self._decided("announced", at_once)
            if not caught_up.result():
                return self._decided("not_yet", _not_yet(domain, aggregate_id))
        finally:
            caught_up.cancel()  # the head answered first: the progress is not needed
            await asyncio.gather(caught_up, return_exceptions=True)
            if subscribing is not None:
                stop_once_subscribed(subscribing)
        return _Head(await self._head(domain, aggregate_id))

    def _listen(
        self, aggregate_type: str, aggregate_id: str, announced: asyncio.Event
    ) -> asyncio.Task[Listening] | None:
        """Set ``announced`` whenever the feed tells of the aggregate, and once subscribed (an
        event stored before the subscription was heard by no one: the head is read once)."""
        if self._feed is None:
            return None

        def heard(_: Event | None) -> None:  # an event stored, or some maybe missed
            announced.set()

        channel = LiveChannel(aggregate_type, aggregate_id)
        subscribing = asyncio.create_task(self._feed.listen(channel, heard))
        subscribing.add_done_callback(lambda _: announced.set())
        return subscribing


async def _caught_up_first(caught_up: asyncio.Future[bool], announced: asyncio.Event) -> bool:
    """Wait until the progress answers (True) or the feed has told of the aggregate (False)."""
    if not announced.is_set():
        told: asyncio.Future[bool] = asyncio.ensure_future(announced.wait())
        try:
            await asyncio.wait({caught_up, told}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            told.cancel()
    return caught_up.done()


class _Head:
    """The store's head once nothing that may precede the request is in flight."""

    __slots__ = ("event",)

    def __init__(self, event: Event | None) -> None:
        self.event = event


def judge(
    domain: Domain, aggregate_id: str, head: Event | None, mark: MarkRequest
) -> Refused | None:
    """The refusal of the marked event after ``head`` (None: a new aggregate), or None: allowed.

    Its expected version first: a request decided on another version than the head's is
    refused as that, whatever its type."""
    version = 0 if head is None else head.version or 0
    if mark.expected_version is not None and mark.expected_version != version:
        return _wrong_version(domain, aggregate_id, mark.expected_version, version)
    try:
        domain.check_transition(aggregate_id, _type(head), mark.event_type)
    except TransitionRejected as e:
        return refused(e)
    return None


def _wrong_version(domain: Domain, aggregate_id: str, expected: int, current: int) -> Refused:
    aggregate = f"{domain.name} {aggregate_id}"
    return refused(WrongExpectedVersion(aggregate, expected=expected, current=current))


def _not_yet(domain: Domain, aggregate_id: str) -> NotDone:
    return NotDone(
        "store_catching_up",
        f"{domain.name} {aggregate_id}: the events this one may follow are not all stored yet, "
        "so it can be neither accepted nor refused truthfully. Nothing was written; retry in "
        "a moment.",
        "store",
        {"retry_after_s": 1},
    )


def _type(event: Event | None) -> str | None:
    return None if event is None else event.type


def fallback_of(head: Event | None) -> str:
    """The mark the store's head stands for (``MarkRequest.fallback``): its type, id and
    version, or ``NEW_AGGREGATE`` when the store holds nothing of the aggregate."""
    return NEW_AGGREGATE if head is None else f"{head.type}|{head.id}|{head.version or 0}"
