"""The pm role's polls, every ``poll_s``: instances an operator asked to retry, deadlines due,
outboxes left unsent (a process that died between writing and sending).

**Deadlines** are claimed by the write that fires them (over the revision read: at most once
each), never for a stuck or ended instance, and only once the instance has reacted to every
stored event, of a type its manager takes, of the aggregates it has seen: a payment stored
while the role was down is seen before the payment deadline fires. With the door's marks
given, a deadline also waits while an aggregate's mark names an event the store does not hold
yet: a payment the door accepted is stored, and reacted to, before the deadline is judged
(else its command would be judged after events the instance never saw, and refused when they
moved the aggregate past what it may follow). That wait is bounded by ``accepted_wait_s``
from when this process first found the deadline due (its due time, when the role was up), for
a mark whose event is never stored (its produce failed and Redis lost the mark's rollback);
past it the deadline fires on the stored events alone, with a warning. Counted from the due
time alone, a role back from an outage longer than the wait would fire at once a deadline
whose payment the door had just accepted, and cancel a paid order.
The bound: a deadline fires within ``poll_s`` of its due time, plus the role's lag on its
instance's events (the appender's too, for accepted ones), plus one command's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from snapshot_rules.process import ProcessManager
from topics.envelope import Event
from topics.errors import MarkerUnavailable, Unavailable, Unstorable
from workers.ports import RETRYING, AggregateRef, Deadline, Instance, MarkPeek, Trigger
from workers.roles.process.runner import ProcessRunner, all_of, letter, stuck_detail
from workers.roles.process.steps import Step, due_deadline, fire, retry, stopped

log = logging.getLogger(__name__)

Work = Callable[[ProcessManager, str], Awaitable[None]]


class Polls:
    """The polls of one pm process, over its runner's writes and sends; ``marks``: the command
    door's marks, which a due deadline waits for (None: it waits for the stored events only)."""

    def __init__(self, runner: ProcessRunner, marks: MarkPeek | None = None) -> None:
        self.runner = runner
        self.marks = marks
        self._slots = asyncio.Semaphore(runner.config.concurrency)
        # Deadlines due and deferred, by instance: (deadline id, when this process first found
        # it due); kept only for the instances the last poll found due.
        self._waiting: dict[tuple[str, str], tuple[str, datetime]] = {}

    async def poll(self) -> int:
        """One round: retries asked, deadlines due, outboxes left unsent. Returns how many
        instances it looked at."""
        r = self.runner
        now, batch = r.clock(), r.config.batch
        looked = 0
        due = await r.instances.due(now, limit=batch)
        still = {(i.process, i.key) for i in due}
        self._waiting = {k: v for k, v in self._waiting.items() if k in still}
        for found, work in (
            (await r.instances.retrying(limit=batch), self._retry),
            (due, self._fire),
            (
                await r.instances.unsent(
                    now - timedelta(seconds=r.config.unsent_after_s), limit=batch
                ),
                self._resend,
            ),
        ):
            known = [i for i in found if i.process in r.processes]
            await all_of(self._alone(work, i) for i in known)
            looked += len(known)
        return looked

    async def run(self) -> None:
        """Poll forever; a dependency that is down only delays the next round."""
        while True:
            try:
                await self.poll()
            except Unavailable as e:
                log.warning("process managers' poll waits: %s", e)
            await asyncio.sleep(self.runner.config.poll_s)

    async def _alone(self, work: Work, instance: Instance) -> None:
        async with self._slots, self.runner.lock(instance.process, instance.key):
            await work(self.runner.processes.get(instance.process), instance.key)

    async def _fire(self, manager: ProcessManager, key: str) -> None:
        for _ in range(self.runner.config.batch):  # every deadline due now, one write each
            if not await self._fire_one(manager, key):
                return

    async def _fire_one(self, manager: ProcessManager, key: str) -> bool:
        """Fire the instance's soonest deadline due now; False when none is (or it waits)."""
        r = self.runner
        found = (await r.instances.load(manager.name, [key])).get(key)
        now = r.clock()
        deadline = due_deadline(found, now) if found is not None else None
        if found is None or deadline is None:
            return False
        if not await self._caught_up(manager, found, self._waited_s(found, deadline, now)):
            r.metrics.deadlines.labels(manager.name, "deferred").inc()
            return False
        self._waiting.pop((found.process, found.key), None)

        def step(current: Instance | None) -> Step:
            still = due_deadline(current, now) if current is not None else None
            if current is None or still is None or still.id != deadline.id:
                return Step(None, "gone")  # fired or cancelled meanwhile
            return fire(manager, current, still, now)

        done, current = await self._write(manager, key, step, Trigger(deadline=deadline))
        if done.instance is None or current is None:
            return False
        r.metrics.deadlines.labels(manager.name, "fired").inc()
        delay_s = max(0.0, (now - deadline.due_at).total_seconds())
        r.metrics.deadline_delay.labels(manager.name).observe(delay_s)
        await self._after(manager, done, current)
        return True

    def _waited_s(self, instance: Instance, deadline: Deadline, now: datetime) -> float:
        """How long this process has found ``deadline`` due (0 the first time)."""
        at = (instance.process, instance.key)
        waiting, since = self._waiting.get(at, (deadline.id, now))
        if waiting != deadline.id:
            since = now
        self._waiting[at] = (deadline.id, since)
        return (now - since).total_seconds()

    async def _caught_up(
        self, manager: ProcessManager, instance: Instance, waited_s: float
    ) -> bool:
        """Whether the instance has reacted to every stored event, of a type its manager takes,
        of each aggregate it has seen, and (while ``waited_s`` is within the wait) the store holds
        every event the door accepted on them: its deadline may fire only then."""
        for aggregate, version in instance.seen.items():
            aggregate_type, _, aggregate_id = aggregate.partition(":")
            ref = (aggregate_type, aggregate_id)
            later = await self.runner.events.select(ref, after=version)
            if any(manager.phase(e) is not None for e in later):
                return False
            unstored = await self._accepted_unstored(aggregate, ref, later)
            if unstored is None:
                continue
            if waited_s < self.runner.config.accepted_wait_s:
                return False
            log.warning(
                "a deadline of %s fires after waiting %.1f s, on the stored events of %s alone: %s",
                manager.name,
                waited_s,
                aggregate,
                unstored,
            )
        return True

    async def _accepted_unstored(
        self, aggregate: str, ref: AggregateRef, later: list[Event]
    ) -> str | None:
        """Why the store may not hold every event the door accepted on the aggregate (its mark
        names one the store does not hold, or the marker does not answer); None when it does,
        or when no marks are given or the wait is 0 (nothing to wait for: no Redis read)."""
        if self.marks is None or self.runner.config.accepted_wait_s <= 0:
            return None
        try:
            mark = await self.marks.peek(aggregate)
        except MarkerUnavailable as e:
            return f"the marker does not answer ({e})"
        if mark is None or any(e.id == mark[1] for e in later):
            return None
        if await self.runner.events.find([mark[1]], aggregates=[ref]):
            return None
        return f"the door accepted {mark[0]} {mark[1]}, which the store does not hold"

    async def _retry(self, manager: ProcessManager, key: str) -> None:
        r = self.runner

        def step(found: Instance | None) -> Step:
            if found is None or found.status != RETRYING:
                return Step(None, "retried")
            return retry(manager, found, r.clock())

        done, current = await self._write(manager, key, step, None)
        if done.instance is None or current is None:
            return
        log.info("process %s/%s retried: %s", manager.name, key, done.outcome)
        await self._after(manager, done, current)

    async def _resend(self, manager: ProcessManager, key: str) -> None:
        found = (await self.runner.instances.load(manager.name, [key])).get(key)
        if found is not None:
            await self.runner.flush(manager, found)

    async def _after(self, manager: ProcessManager, done: Step, current: Instance) -> None:
        """Count a step written, dead-letter it if it stopped the instance, send its outbox."""
        r = self.runner
        r.count(manager.name, done.set, done.cancelled)
        if done.outcome == "stuck" and current.stuck is not None:
            r.metrics.stuck.labels(manager.name, current.stuck.reason).inc()
            await r.dead_letters.send([letter(current, stuck_detail(current))])
        await r.flush(manager, current)

    async def _write(
        self,
        manager: ProcessManager,
        key: str,
        step: Callable[[Instance | None], Step],
        trigger: Trigger | None,
    ) -> tuple[Step, Instance | None]:
        """The runner's write; a state the store cannot hold stops the instance as it was."""
        try:
            return await self.runner.write(manager, key, step)
        except Unstorable as e:
            why = str(e)[:1000]

        def halt(found: Instance | None) -> Step:
            if found is None:
                return Step(None, "gone")
            halted = stopped(found, "state_unstorable", why, trigger, self.runner.clock())
            return Step(halted, "stuck")

        return await self.runner.write(manager, key, halt)
