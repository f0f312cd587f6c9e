"""The pm role's logic: stored events through the instances' steps, each instance written over
the revision it was read at, then the decided commands through the command door.

**Effects once.** An instance's new state, its commands and its deadlines are one write (the
outbox): a crash after it sends the same commands again (found by the redelivered event, or by
the poll for outboxes left unsent), with the same command ids, which the door answers as
duplicates; a crash before it writes nothing, and the events come again. Two processes on one
instance (a rebalance, a deadline polled by both) write over the same revision: one wins, the
other reads again and finds the work done. A batch of stored events costs one read, one write
and, once its commands are answered, one more write per batch (``save_many``), not per event.
The polls (deadlines, retries, unsent outboxes) are ``workers.roles.process.polls``, over this
runner's writes and sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

from snapshot_rules.process import Processes, ProcessManager
from topics.envelope import Event, encode, utc_now
from topics.errors import Unavailable, Unstorable
from workers.metrics import ProcessMetrics
from workers.ports import (
    ACTIVE,
    RETRYING,
    STUCK,
    EventStore,
    Instance,
    PendingCommand,
    ProcessInstances,
    Record,
    Trigger,
)
from workers.retries import Backoff
from workers.roles.command.requests import CommandRequest
from workers.roles.deadletter import DeadLetter, DeadLetters
from workers.roles.outcomes import Accepted, Outcome, Refused, Stored
from workers.roles.process.steps import Folded, Step, fold, stopped

log = logging.getLogger(__name__)

Submit = Callable[[CommandRequest], Awaitable[Outcome]]
"""The command door (``CommandDispatcher.handle``): what an HTTP append goes through."""
TRANSIENT = frozenset({"command_in_progress", "conflict", "too_many_writes"})
"""Refusals a later try may pass: the command is sent again, the instance does not stop (a
manager's principal over its write budget is sent again as the agent's retries pace it)."""
Pairs = list[tuple[Event, Record]]


class Moved(Unavailable):
    """Another writer moved the instance first, every time: read it again later."""

    service = "store"
    code = "store_unavailable"


class CommandsPending(Unavailable):
    """A command was not answered for good (a dependency, or a claim held elsewhere): sent again."""


CONFLICTS = Backoff(first_s=0.001, max_s=0.05, attempts=50, jitter_s=0.01)
"""The retries of a write another writer beat (``Moved``: read again, apply again); past them,
Moved is a dependency's pause like any other."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """How the role polls: every ``poll_s``; unsent outboxes older than ``unsent_after_s``; a
    due deadline waits at most ``accepted_wait_s`` (from when a poll first finds it due) for
    events the door accepted on its aggregates and the store does not hold yet."""

    poll_s: float = 1.0
    unsent_after_s: float = 5.0
    accepted_wait_s: float = 30.0
    batch: int = 100
    concurrency: int = 32


class ProcessRunner:
    """Runs every enabled process manager of one process over the shared instance store."""

    def __init__(
        self,
        *,
        processes: Processes,
        instances: ProcessInstances,
        events: EventStore,
        submit: Submit,
        dead_letters: DeadLetters,
        metrics: ProcessMetrics,
        config: RunnerConfig = RunnerConfig(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.processes = processes
        self.instances = instances
        self.events = events
        self._submit = submit
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.config = config
        self.clock = clock
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.slots = asyncio.Semaphore(config.concurrency)

    # --- stored events ---------------------------------------------------------------------

    async def handle(self, pairs: Sequence[tuple[Event, Record]]) -> None:
        """React to a batch of stored events, each instance's in order, in one write per
        instance. Raises Unavailable (the batch is retried: what was done is skipped as seen)
        while a dependency or the command door is down."""
        keyed: dict[str, dict[str, Pairs]] = {}
        letters = []
        for event, record in pairs:
            for manager in self.processes.interested(event):
                try:
                    key = manager.key_of(event)
                except ValueError as e:
                    letters.append(DeadLetter(record, "process_unkeyed", str(e)))
                    self.metrics.events.labels(manager.name, "unkeyed").inc()
                    continue
                keyed.setdefault(manager.name, {}).setdefault(key, []).append((event, record))
        if letters:
            await self.dead_letters.send(letters)
        for name, groups in keyed.items():
            manager = self.processes.get(name)
            async with self._all_locked(name, sorted(groups)):
                stored = await self._decide(manager, groups)
                await self.flush_all(manager, list(stored.values()))

    async def _decide(
        self, manager: ProcessManager, groups: dict[str, Pairs]
    ) -> dict[str, Instance]:
        """Fold each instance's events and write them all; read again and fold again those
        another writer moved meanwhile. The instances as stored now, by key."""
        pending, stored = dict(groups), {}
        async for attempt in CONFLICTS.tries(Moved):
            with attempt:
                found = await self.instances.load(manager.name, list(pending))
                now = self.clock()
                folded = {
                    key: fold(manager, key, found.get(key), [e for e, _ in pairs], now)
                    for key, pairs in pending.items()
                }
                saved = await self._save_many(manager, folded, found, pending)
                letters = []
                for key, f in folded.items():
                    if f.instance is None or saved.get(key):
                        current = f.instance if f.instance is not None else found.get(key)
                        if current is not None:
                            stored[key] = current
                        letters += self._took(manager.name, f, current, pending[key])
                        del pending[key]
                if letters:
                    await self.dead_letters.send(letters)
                if pending:
                    raise Moved(f"{len(pending)} instances of {manager.name} moved; reading again")
                return stored
        raise AssertionError("stamina ended its tries without an answer or an error")

    async def _save_many(
        self,
        manager: ProcessManager,
        folded: dict[str, Folded],
        found: dict[str, Instance],
        pairs: dict[str, Pairs],
    ) -> dict[str, bool]:
        """Write every folded instance at once; if the store cannot hold one (its state too
        large), write each alone and stop that one at the state it had, its events held for a
        retry (``folded`` then says so). Whether each was written, by key."""
        writes = [(key, f.instance) for key, f in folded.items() if f.instance is not None]
        try:
            written = await self.instances.save_many([i for _, i in writes])
            return dict(zip((key for key, _ in writes), written, strict=True))
        except Unstorable:
            pass
        saved = {}
        for key, instance in writes:
            try:
                saved[key] = await self.instances.save(instance)
            except Unstorable as e:
                halted = self._unstorable(manager, key, found.get(key), e, pairs[key])
                saved[key] = await self.instances.save(halted)
                folded[key] = Folded(halted, ("stuck", *("held",) * (len(pairs[key]) - 1)))
        return saved

    def _unstorable(
        self,
        manager: ProcessManager,
        key: str,
        found: Instance | None,
        error: Unstorable,
        pairs: Pairs,
    ) -> Instance:
        """The instance as it was, stopped on the first event of the batch, the rest held."""
        now = self.clock()
        base = found or Instance(manager.name, key, 0, ACTIVE, None, now, now)
        held = replace(base, held=(*base.held, *(encode(e) for e, _ in pairs[1:])))
        first = Trigger(event=encode(pairs[0][0]))
        return stopped(held, "state_unstorable", str(error)[:1000], first, now)

    def _took(
        self, name: str, folded: Folded, current: Instance | None, pairs: Pairs
    ) -> list[DeadLetter]:
        """Count what the events did; the dead letters of those that stopped or overflowed it."""
        letters = []
        for outcome, (_, record) in zip(folded.outcomes, pairs, strict=False):
            self.metrics.events.labels(name, outcome).inc()
            if outcome in ("stuck", "dropped"):
                prefix = "held queue full, dropped: " if outcome == "dropped" else ""
                letters.append(DeadLetter(record, "process_stuck", stuck_detail(current, prefix)))
        self.count(name, folded.set, folded.cancelled)
        if "stuck" in folded.outcomes and current is not None and current.stuck is not None:
            self.metrics.stuck.labels(name, current.stuck.reason).inc()
        return letters

    # --- writing one instance ----------------------------------------------------------------

    async def write(
        self, manager: ProcessManager, key: str, step: Callable[[Instance | None], Step]
    ) -> tuple[Step, Instance | None]:
        """Load, step, save over the revision loaded; read again when another writer moved it.
        Returns the step and the instance now stored (None: none)."""
        async for attempt in CONFLICTS.tries(Moved):
            with attempt:
                found = (await self.instances.load(manager.name, [key])).get(key)
                done = step(found)
                if done.instance is None:
                    return done, found
                if not await self.instances.save(done.instance):
                    raise Moved(f"instance {manager.name}/{key} moved; reading it again")
                return done, done.instance
        raise AssertionError("stamina ended its tries without an answer or an error")

    # --- commands ----------------------------------------------------------------------------

    async def flush_all(self, manager: ProcessManager, instances: Iterable[Instance]) -> None:
        """Send the outboxes of ``instances`` side by side, then drop what was answered (one
        write for them all); raises CommandsPending after that if any command must go again."""
        waiting = [i for i in instances if i.outbox and i.status not in (STUCK, RETRYING)]
        if not waiting:
            return
        results = await asyncio.gather(
            *(self._send(manager, i) for i in waiting), return_exceptions=True
        )
        drops = [(i, sent) for i, (sent, _) in zip(waiting, _sent_of(results), strict=True) if sent]
        if drops:
            updated = [_without(i, sent) for i, sent in drops]
            # Not journaled: lost in a crash of the store, the commands are only sent again.
            written = await self.instances.save_many(updated, durable=False)
            for (instance, sent), ok in zip(drops, written, strict=True):
                if not ok:
                    await self._drop_sent(manager, instance, sent)
        for result in results:
            if isinstance(result, BaseException):
                raise result
            if result[1] is not None:
                raise result[1]

    async def flush(self, manager: ProcessManager, instance: Instance) -> None:
        """Send one instance's outbox (``flush_all`` of one)."""
        await self.flush_all(manager, [instance])

    async def _send(
        self, manager: ProcessManager, instance: Instance
    ) -> tuple[list[str], CommandsPending | None]:
        """Send the outbox in order until one is not answered for good; the ids answered, and
        the reason to send the rest again (None: all answered, or the instance stopped)."""
        sent: list[str] = []
        async with self.slots:
            for command in instance.outbox:
                outcome = await self._submit(self._request(manager, command))
                if isinstance(outcome, Accepted | Stored):
                    label = "duplicate" if outcome.duplicate else "accepted"
                    self.metrics.commands.labels(manager.name, label).inc()
                    sent.append(command.command_id)
                    continue
                if isinstance(outcome, Refused) and outcome.code not in TRANSIENT:
                    self.metrics.commands.labels(manager.name, "refused").inc()
                    await self._refused(manager, instance.key, command, outcome, sent)
                    return [], None  # the write that stopped it dropped the answered ones
                self.metrics.commands.labels(manager.name, "pending").inc()
                message = getattr(outcome, "message", "")
                return sent, CommandsPending(
                    f"{manager.name}/{instance.key}: {command.type} to {command.aggregate_type} "
                    f"{command.aggregate_id} not answered for good ({message}); sent again."
                )
        return sent, None

    def _request(self, manager: ProcessManager, command: PendingCommand) -> CommandRequest:
        return CommandRequest(
            command.aggregate_type,
            command.aggregate_id,
            command.type,
            command.data,
            client_id=f"eventfleet-{manager.principal}",
            command_id=command.command_id,
            correlation_id=command.correlation_id,
            causation_id=command.causation_id,
            actor=manager.actor(),
        )

    async def _drop_sent(
        self, manager: ProcessManager, instance: Instance, sent: list[str]
    ) -> None:
        def step(found: Instance | None) -> Step:
            if found is None or not any(c.command_id in sent for c in found.outbox):
                return Step(None, "sent")
            return Step(_without(found, sent), "sent")

        await self.write(manager, instance.key, step)

    async def _refused(
        self,
        manager: ProcessManager,
        key: str,
        command: PendingCommand,
        outcome: Refused,
        sent: list[str],
    ) -> None:
        detail = (
            f"{command.type} to {command.aggregate_type} {command.aggregate_id} (command "
            f"{command.command_id}) was refused, {outcome.code}: {outcome.message}"
        )[:1000]

        def step(found: Instance | None) -> Step:
            if found is None or found.status in (STUCK, RETRYING):
                return Step(None, "stuck")
            outbox = tuple(c for c in found.outbox if c.command_id not in sent)
            halted = stopped(
                replace(found, outbox=outbox), "command_refused", detail, None, self.clock()
            )
            return Step(halted, "stuck")

        done, _ = await self.write(manager, key, step)
        if done.instance is not None:
            self.metrics.stuck.labels(manager.name, "command_refused").inc()
            await self.dead_letters.send([letter(done.instance, detail)])

    # --- bookkeeping -----------------------------------------------------------------------

    def count(self, name: str, set_: int, cancelled: int) -> None:
        if set_:
            self.metrics.deadlines.labels(name, "set").inc(set_)
        if cancelled:
            self.metrics.deadlines.labels(name, "cancelled").inc(cancelled)

    @contextlib.asynccontextmanager
    async def lock(self, process: str, key: str) -> AsyncIterator[None]:
        """One step at a time per instance in this process (the conditional write covers the
        others)."""
        name = f"{process}/{key}"
        lock, users = self._locks.get(name, (asyncio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def _all_locked(self, process: str, keys: Sequence[str]) -> AsyncIterator[None]:
        """Every instance of ``keys`` locked, in key order (never two holders in a cycle)."""
        async with contextlib.AsyncExitStack() as stack:
            for key in keys:
                await stack.enter_async_context(self.lock(process, key))
            yield


def _without(instance: Instance, sent: list[str]) -> Instance:
    """``instance`` at its next revision, the ``sent`` commands out of its outbox."""
    outbox = tuple(c for c in instance.outbox if c.command_id not in sent)
    return replace(
        instance,
        outbox=outbox,
        revision=instance.revision + 1,
        unsent_since=instance.unsent_since if outbox else None,
    )


def _sent_of(
    results: Sequence[tuple[list[str], CommandsPending | None] | BaseException],
) -> list[tuple[list[str], CommandsPending | None]]:
    return [([], None) if isinstance(r, BaseException) else r for r in results]


def stuck_detail(instance: Instance | None, prefix: str = "") -> str:
    trouble = instance.stuck if instance is not None else None
    if instance is None or trouble is None:
        return prefix.rstrip(": ")
    return f"{prefix}{instance.process}/{instance.key} {trouble.reason}: {trouble.detail}"[:1000]


def letter(instance: Instance, detail: str) -> DeadLetter:
    """A stuck instance's dead letter when no stored record stopped it (a deadline, a refused
    command): its key and what stopped it."""
    body = {"process": instance.process, "key": instance.key, "detail": detail}
    record = Record(
        f"process:{instance.process}", 0, 0, instance.key.encode(), orjson.dumps(body), ()
    )
    return DeadLetter(record, "process_stuck", detail)


async def all_of(work: Iterable[Awaitable[None]]) -> None:
    """Run ``work`` side by side to the end; then raise the first error any raised."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
