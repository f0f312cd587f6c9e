"""What every bus shares: errors, type filters and the registry of a bus's live subscriptions; and
for the durable buses (``workers.adapters.{redis,nats,kafka}``), how a subscription hands an event
to its handler (``Delivery``) and the loop that reads for it (``ReadLoop``)."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from topics.envelope import EVENT_TYPE_RE, Event, decode
from topics.errors import EventfleetError, InvalidInput, Unavailable
from workers.bus.policies import RetryPolicy
from workers.ports import Handler, Subscription
from workers.retries import keep_running

log = logging.getLogger(__name__)
T = TypeVar("T")

ANY_TYPE = "*"
"""``subscribe(ANY_TYPE, handler)`` receives every event type."""

DURABLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
"""Durable subscription names: valid as a Redis group, a NATS consumer and a Kafka group."""


class BusUnavailable(Unavailable):
    """The bus server (Redis, NATS or Kafka) did not answer in time."""

    service = "bus"


class BusError(EventfleetError):
    """The bus server refused a call in a way a retry will not fix (a config or naming problem)."""


class BusClosed(EventfleetError):
    """The bus was closed; build a new one to publish or subscribe again."""


def require_stored(event: Event) -> None:
    """Subscribers act on stored events only: an unversioned one is a caller bug."""
    if event.version is None:
        raise InvalidInput(
            f"event {event.id} ({event.type} of {event.aggregate_type} {event.aggregate_id})"
            " has no version: only stored events may be published on the bus;"
            " append it to the event store first"
        )


def check_event_type(event_type: str) -> str:
    """Validate a subscription filter: ``"*"`` or one event type name."""
    if event_type != ANY_TYPE and not EVENT_TYPE_RE.match(event_type):
        raise InvalidInput(
            f"cannot subscribe to {event_type!r}: expected '*' or an event type"
            f" matching {EVENT_TYPE_RE.pattern}"
        )
    return event_type


def check_durable(durable: str | None) -> str | None:
    if durable is not None and not DURABLE_RE.match(durable):
        raise InvalidInput(f"durable name {durable!r} must match {DURABLE_RE.pattern}")
    return durable


def matches(event_type: str, event: Event) -> bool:
    return event_type == ANY_TYPE or event.type == event_type


def decode_bus_event(raw: bytes | str) -> Event:
    """Decode an event read off the bus; raises InvalidInput when it is not a stored event."""
    event = decode(raw)
    require_stored(event)
    return event


DeadLetterSink = Callable[[str, int], Awaitable[None]]
"""Writes the event being delivered to the dead-letter place with (reason, attempts)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one subscription of a durable bus hands what it reads to its handler.

    ``event_type`` filters (``"*"``: all); ``policy`` bounds the handler's runs before the event
    is dead-lettered; ``where`` names the subscription in the log.
    """

    event_type: str
    handler: Handler
    policy: RetryPolicy
    where: str

    def wants(self, event_type: str) -> bool:
        """Whether an event of ``event_type`` is for this subscription."""
        return self.event_type in (ANY_TYPE, event_type)

    async def deliver(
        self, raw: bytes | str, dead_letter: DeadLetterSink, *, what: str, done_attempts: int = 0
    ) -> None:
        """Decode ``raw`` and run the handler on it if it is of ``event_type``; bytes that are not
        a stored event are dead-lettered at once (``what`` names them in the log).

        ``done_attempts`` are runs an earlier delivery already spent (a redelivered entry of
        a consumer that died), so a poison event that crashes the process is bounded too.
        Returns once the event is handled, skipped or dead-lettered; only cancellation escapes.
        """
        try:
            event = decode_bus_event(raw)
        except InvalidInput as e:
            reason = f"not a stored event envelope: {e}"
            await dead_letter_until_done(dead_letter, reason, 0, self.policy, self.where, what)
            return
        if self.wants(event.type):
            await self._handle(event, dead_letter, done_attempts)

    async def _handle(self, event: Event, dead_letter: DeadLetterSink, done_attempts: int) -> None:
        """Run the handler until it succeeds or ``policy.max_attempts`` runs failed, then
        dead-letter."""
        policy = self.policy
        attempts = max(done_attempts, policy.max_attempts)
        reason = f"already delivered {done_attempts} times (its consumer stopped before acking)"
        try:
            if done_attempts < policy.max_attempts:
                async for attempt in policy.runs(done=done_attempts).tries(Exception):
                    with attempt:
                        await self._run(event, done_attempts + attempt.num)
                return
        except Exception as e:
            reason = f"handler failed: {e!r}"
        await dead_letter_until_done(dead_letter, reason, attempts, policy, self.where, event.id)

    async def _run(self, event: Event, run: int) -> None:
        """One run of the handler; a failure is logged with its run number, then raised."""
        try:
            await self.handler(event)
        except Exception as e:
            log.warning(
                "%s: handler failed on event %s (%s), attempt %d of %d: %r",
                self.where,
                event.id,
                event.type,
                run,
                self.policy.max_attempts,
                e,
            )
            raise


async def dead_letter_until_done(
    dead_letter: DeadLetterSink,
    reason: str,
    attempts: int,
    policy: RetryPolicy,
    where: str,
    what: str,
) -> None:
    """Dead-letter, retrying while the server is down: dropping the event is never an option."""
    log.error("%s: dead-lettering %s after %d attempts: %s", where, what, attempts, reason)
    async for attempt in policy.writes().tries(Unavailable):
        with attempt:
            try:
                await dead_letter(reason, attempts)
            except Unavailable as e:
                log.warning("%s: dead-lettering %s failed, will retry: %s", where, what, e)
                raise


async def bounded(call: Awaitable[T], timeout_s: float) -> T:
    """Await ``call`` for at most ``timeout_s`` (TimeoutError after).

    Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancel that races with the
    inner call finishing, and a reader loop that misses its cancel never stops.
    """
    async with asyncio.timeout(timeout_s):
        return await call


async def stop_task(task: asyncio.Task[None] | None, timeout_s: float) -> None:
    """Cancel ``task`` and wait for it at most ``timeout_s``; never raises."""
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        log.warning("bus task %s did not stop within %.1f s", task.get_name(), timeout_s)
    elif not task.cancelled() and task.exception() is not None:
        # a loop that died on its own is reported, not re-raised at close
        log.warning("bus task %s ended with %r", task.get_name(), task.exception())


class ReadLoop:
    """The task that reads for one subscription of a durable bus until the subscription stops.

    It never dies quietly: a failed ``step`` is told to ``failed`` (the error, how many in a row)
    and waited out on the policy's ``reads`` backoff, then the loop goes on.
    """

    def __init__(self, where: str, policy: RetryPolicy) -> None:
        self.where = where
        self.policy = policy
        self.task: asyncio.Task[None] | None = None
        self.stopping = False  # besides the cancel: a loop must end even if one is lost

    def start(
        self,
        step: Callable[[], Awaitable[object]],
        failed: Callable[[Exception, int], Awaitable[None]],
    ) -> None:
        reads = keep_running(
            step, self.policy.reads(), failed=failed, running=lambda: not self.stopping
        )
        self.task = asyncio.create_task(reads, name=self.where)

    async def stop(self, timeout_s: float) -> None:
        """Cancel the loop and wait for it at most ``timeout_s``; never raises."""
        self.stopping = True
        await stop_task(self.task, timeout_s)


class Reader(Protocol):
    """One running subscription of a durable bus: its consumer and the task that reads it."""

    async def stop(self) -> None:
        """Stop reading and let go of what it holds; bounded, never raises."""
        ...


class Subscriptions:
    """The live subscriptions of one bus: each cancelled on its own, or all when the bus closes.

    ``opening`` checks a new subscription's arguments and names it (a durable name, or a fresh
    ``tmp-…`` one); ``added`` hands out its cancel; after ``close`` the bus refuses new work.
    """

    def __init__(self, bus: str) -> None:
        self._bus = bus
        self._readers: set[Reader] = set()
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise BusClosed(f"the {self._bus} is closed; create a new one")

    def opening(self, event_type: str, durable: str | None) -> str:
        """The name of a new subscription to ``event_type``; raises if its arguments are bad."""
        self.check_open()
        check_event_type(event_type)
        check_durable(durable)
        return durable if durable is not None else f"tmp-{uuid.uuid4().hex}"

    def added(self, reader: Reader) -> Subscription:
        """Keep ``reader`` until it is cancelled or the bus closes; its cancel stops it."""
        self._readers.add(reader)

        async def cancel() -> None:
            self._readers.discard(reader)
            await reader.stop()

        return Subscription(cancel=cancel)

    async def close(self) -> None:
        """Refuse new work and stop every subscription, concurrently."""
        self.closed = True
        readers, self._readers = list(self._readers), set()
        await asyncio.gather(*(reader.stop() for reader in readers))
