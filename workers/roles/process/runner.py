"""The pm role's logic: stored events and due deadlines through the instances' steps, each
write conditional on the instance's revision, then the decided commands through the command door.

**Effects once.** A step's new state, its commands and its deadlines are one write (the outbox):
a crash after it sends the same commands again (found by the redelivered event, or by the poll
for outboxes left unsent), with the same command ids, which the door answers as duplicates; a
crash before it writes nothing, and the event comes again. Two processes on one instance (a
rebalance, a deadline polled by both) write over the same revision: one wins, the other reads
again and finds the work done. **Deadlines** fire from a poll every ``poll_s``, claimed by that
same conditional write (at most once each), never for a stuck or ended instance, and only once
the instance has reacted to every stored event of the aggregates it follows (a payment stored
while the role was down is seen before the payment deadline fires).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import orjson
import stamina

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
from workers.roles.command.requests import CommandRequest
from workers.roles.deadletter import DeadLetter, DeadLetters
from workers.roles.outcomes import Accepted, Outcome, Refused, Stored
from workers.roles.process.steps import (
    Step,
    due_deadline,
    fire,
    on_event,
    retry,
    stopped,
)

log = logging.getLogger(__name__)

Submit = Callable[[CommandRequest], Awaitable[Outcome]]
"""The command door (``CommandDispatcher.handle``): what an HTTP append goes through."""
TRANSIENT = frozenset({"command_in_progress", "conflict"})
"""Refusals a later try may pass: the command is sent again, the instance does not stop."""


class Moved(Unavailable):
    """Another writer moved the instance first, every time: read it again later."""

    service = "store"


CONFLICTS = {"on": Moved, "attempts": 50, "timeout": None, "wait_initial": 0.001,
             "wait_max": 0.05, "wait_jitter": 0.01}  # fmt: skip
"""The retry policy of a write another writer beat (read again, apply again), run by stamina;
past it, Moved is a dependency's pause like any other."""


class CommandsPending(Unavailable):
    """A command was not answered for good (a dependency, or a claim held elsewhere): sent again."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """How the role polls: every ``poll_s``; unsent outboxes older than ``unsent_after_s``."""

    poll_s: float = 1.0
    unsent_after_s: float = 5.0
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
        self._events = events
        self._submit = submit
        self._dead_letters = dead_letters
        self.metrics = metrics
        self.config = config
        self._clock = clock
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._slots = asyncio.Semaphore(config.concurrency)

    # --- stored events ---------------------------------------------------------------------

    async def handle(self, pairs: Sequence[tuple[Event, Record]]) -> None:
        """React to a batch of stored events, each aggregate's in order: one instance's events
        one after another, instances side by side. Raises Unavailable (the batch is retried:
        what was done is skipped as seen) while a dependency or the command door is down."""
        groups: dict[tuple[str, str], list[tuple[Event, Record]]] = {}
        for event, record in pairs:
            for manager in self.processes.interested(event):
                try:
                    key = manager.key_of(event)
                except ValueError as e:
                    letter = DeadLetter(record, "process_unkeyed", str(e))
                    await self._dead_letters.send([letter])
                    self.metrics.events.labels(manager.name, "unkeyed").inc()
                    continue
                groups.setdefault((manager.name, key), []).append((event, record))
        await _all(self._in_turn(name, key, group) for (name, key), group in groups.items())

    async def _in_turn(self, name: str, key: str, group: list[tuple[Event, Record]]) -> None:
        manager = self.processes.get(name)
        async with self._slots, self._lock(name, key):
            for event, record in group:
                await self._event(manager, key, event, record)

    async def _event(self, manager: ProcessManager, key: str, event: Event, record: Record) -> None:
        def step(found: Instance | None) -> Step:
            return on_event(manager, key, found, event, self._clock())

        done, current = await self._write(manager, key, step, Trigger(event=encode(event)))
        self.metrics.events.labels(manager.name, done.outcome).inc()
        self._count(manager.name, done)
        if done.outcome in ("stuck", "dropped"):
            held_full = "held queue full, dropped: " if done.outcome == "dropped" else ""
            detail = self._stuck_detail(current, held_full)
            await self._dead_letters.send([DeadLetter(record, "process_stuck", detail)])
        if current is not None:
            await self.flush(manager, current)

    # --- writing an instance -----------------------------------------------------------------

    async def _write(
        self,
        manager: ProcessManager,
        key: str,
        step: Callable[[Instance | None], Step],
        trigger: Trigger,
    ) -> tuple[Step, Instance | None]:
        """Load, step, save over the revision loaded; read again when another writer moved it.
        Returns the step and the instance now stored (None: none)."""
        async for attempt in stamina.retry_context(**CONFLICTS):  # type: ignore[arg-type]  # the policy's fields, by name
            with attempt:
                found = (await self.instances.load(manager.name, [key])).get(key)
                done = step(found)
                if done.instance is None:
                    return done, found
                try:
                    saved = await self.instances.save(done.instance)
                except Unstorable as e:  # the state the reaction made: too much to keep
                    done = self._unstorable(manager, key, found, e, trigger)
                    assert done.instance is not None
                    saved = await self.instances.save(done.instance)
                if not saved:
                    raise Moved(f"instance {manager.name}/{key} moved; reading it again")
                return done, done.instance
        raise AssertionError("stamina ended its tries without an answer or an error")

    def _unstorable(
        self,
        manager: ProcessManager,
        key: str,
        found: Instance | None,
        error: Unstorable,
        trigger: Trigger,
    ) -> Step:
        now = self._clock()
        base = found or Instance(manager.name, key, 0, ACTIVE, None, now, now)
        return Step(stopped(base, "state_unstorable", str(error)[:1000], trigger, now), "stuck")

    # --- commands ----------------------------------------------------------------------------

    async def flush(self, manager: ProcessManager, instance: Instance) -> None:
        """Send the instance's outbox through the command door, in order; drop what was
        answered. A refusal for good stops the instance (dead-lettered); anything a later try
        may pass raises CommandsPending, and the commands go again."""
        if instance.status in (STUCK, RETRYING) or not instance.outbox:
            return
        sent: list[str] = []
        try:
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
                    sent = []
                    return
                self.metrics.commands.labels(manager.name, "pending").inc()
                message = getattr(outcome, "message", "")
                raise CommandsPending(
                    f"{manager.name}/{instance.key}: {command.type} to {command.aggregate_type} "
                    f"{command.aggregate_id} not answered for good ({message}); sent again."
                )
        finally:
            if sent:
                await self._drop_sent(manager, instance.key, sent)

    def _request(self, manager: ProcessManager, command: PendingCommand) -> CommandRequest:
        return CommandRequest(
            command.aggregate_type, command.aggregate_id, command.type, command.data,
            client_id=f"eventfleet-{manager.principal}", command_id=command.command_id,
            correlation_id=command.correlation_id, causation_id=command.causation_id,
            actor=manager.actor(),
        )  # fmt: skip

    async def _drop_sent(self, manager: ProcessManager, key: str, sent: list[str]) -> None:
        def step(found: Instance | None) -> Step:
            if found is None or not any(c.command_id in sent for c in found.outbox):
                return Step(None, "sent")
            outbox = tuple(c for c in found.outbox if c.command_id not in sent)
            return Step(replace(found, outbox=outbox, revision=found.revision + 1,
                                unsent_since=found.unsent_since if outbox else None), "sent")  # fmt: skip

        await self._write(manager, key, step, Trigger())

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
            halted = stopped(replace(found, outbox=outbox), "command_refused", detail, None,
                             self._clock())  # fmt: skip
            return Step(halted, "stuck")

        done, _ = await self._write(manager, key, step, Trigger())
        if done.instance is not None:
            self.metrics.stuck.labels(manager.name, "command_refused").inc()
            await self._dead_letters.send([self._letter(done.instance, detail)])

    # --- deadlines, retries and unsent outboxes ------------------------------------------------

    async def poll(self) -> int:
        """One round: instances an operator retries, deadlines due, outboxes left unsent (a
        process that died after writing). Returns how many instances it looked at."""
        now = self._clock()
        batch = self.config.batch
        looked = 0
        for found, work in (
            (await self.instances.retrying(limit=batch), self._retry),
            (await self.instances.due(now, limit=batch), self._fire),
            (await self.instances.unsent(now - timedelta(seconds=self.config.unsent_after_s),
                                         limit=batch), self._resend),
        ):  # fmt: skip
            known = [i for i in found if i.process in self.processes]
            await _all(self._alone(work, i) for i in known)
            looked += len(known)
        return looked

    async def run(self) -> None:
        """Poll forever; a dependency that is down only delays the next round."""
        while True:
            try:
                await self.poll()
            except Unavailable as e:
                log.warning("process managers' poll waits: %s", e)
            await asyncio.sleep(self.config.poll_s)

    async def _alone(
        self, work: Callable[[ProcessManager, str], Awaitable[None]], i: Instance
    ) -> None:
        async with self._slots, self._lock(i.process, i.key):
            await work(self.processes.get(i.process), i.key)

    async def _fire(self, manager: ProcessManager, key: str) -> None:
        for _ in range(self.config.batch):  # every deadline due now, one write each
            if not await self._fire_one(manager, key):
                return

    async def _fire_one(self, manager: ProcessManager, key: str) -> bool:
        """Fire the instance's soonest deadline due now; False when none is (or it waits)."""
        found = (await self.instances.load(manager.name, [key])).get(key)
        now = self._clock()
        deadline = due_deadline(found, now) if found is not None else None
        if found is None or deadline is None:
            return False
        if not await self._caught_up(manager, found):
            self.metrics.deadlines.labels(manager.name, "deferred").inc()
            return False

        def step(current: Instance | None) -> Step:
            still = due_deadline(current, now) if current is not None else None
            if current is None or still is None or still.id != deadline.id:
                return Step(None, "gone")  # fired or cancelled meanwhile
            return fire(manager, current, still, now)

        done, current = await self._write(manager, key, step, Trigger(deadline=deadline))
        if done.instance is None or current is None:
            return False
        self.metrics.deadlines.labels(manager.name, "fired").inc()
        delay_s = max(0.0, (now - deadline.due_at).total_seconds())
        self.metrics.deadline_delay.labels(manager.name).observe(delay_s)
        self._count(manager.name, done)
        if done.outcome == "stuck":
            await self._dead_letters.send([self._letter(current, self._stuck_detail(current))])
        await self.flush(manager, current)
        return True

    async def _caught_up(self, manager: ProcessManager, instance: Instance) -> bool:
        """Whether the instance has reacted to every stored event, of a type its manager takes,
        of each aggregate it has seen (its deadline may fire only then)."""
        for aggregate, version in instance.seen.items():
            aggregate_type, _, aggregate_id = aggregate.partition(":")
            later = await self._events.select((aggregate_type, aggregate_id), after=version)
            if any(manager.phase(e) is not None for e in later):
                return False
        return True

    async def _retry(self, manager: ProcessManager, key: str) -> None:
        def step(found: Instance | None) -> Step:
            if found is None or found.status != RETRYING:
                return Step(None, "retried")
            return retry(manager, found, self._clock())

        done, current = await self._write(manager, key, step, Trigger())
        if done.instance is None or current is None:
            return
        self._count(manager.name, done)
        log.info("process %s/%s retried: %s", manager.name, key, done.outcome)
        if done.outcome == "stuck":
            await self._dead_letters.send([self._letter(current, self._stuck_detail(current))])
        await self.flush(manager, current)

    async def _resend(self, manager: ProcessManager, key: str) -> None:
        found = (await self.instances.load(manager.name, [key])).get(key)
        if found is not None:
            await self.flush(manager, found)

    # --- bookkeeping -----------------------------------------------------------------------

    def _count(self, name: str, step: Step) -> None:
        if step.set:
            self.metrics.deadlines.labels(name, "set").inc(step.set)
        if step.cancelled:
            self.metrics.deadlines.labels(name, "cancelled").inc(step.cancelled)
        trouble = step.instance.stuck if step.instance is not None else None
        if step.outcome == "stuck" and trouble is not None:
            self.metrics.stuck.labels(name, trouble.reason).inc()

    @staticmethod
    def _stuck_detail(instance: Instance | None, prefix: str = "") -> str:
        trouble = instance.stuck if instance is not None else None
        if instance is None or trouble is None:
            return prefix.rstrip(": ")
        return f"{prefix}{instance.process}/{instance.key} {trouble.reason}: {trouble.detail}"[
            :1000
        ]

    def _letter(self, instance: Instance, detail: str) -> DeadLetter:
        """A stuck instance's dead letter when no stored record stopped it (a deadline, a
        refused command): its key and what stopped it."""
        body = {"process": instance.process, "key": instance.key, "detail": detail}
        record = Record(f"process:{instance.process}", 0, 0, instance.key.encode(),
                        orjson.dumps(body), ())  # fmt: skip
        return DeadLetter(record, "process_stuck", detail)

    @contextlib.asynccontextmanager
    async def _lock(self, process: str, key: str) -> AsyncIterator[None]:
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


async def _all(work: Iterable[Awaitable[None]]) -> None:
    """Run ``work`` side by side to the end; then raise the first error any raised."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
