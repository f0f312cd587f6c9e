"""The operators' desk of the process managers, shared by the API, the console and the CLI: the
managers and their counts, instances page by page, one instance, pending deadlines, and the
retry of a stuck instance (recorded in the operator trail, like a dead letter's replay).

A retry is asked here and done by the pm role (whichever of its processes polls first): the
instance goes from ``stuck`` to ``retrying`` in one conditional write, so two operators asking
at once retry it once, and a process that does not run the role can take the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from snapshot_rules.process import Processes, ProcessManager
from topics.envelope import AGGREGATE_ID_RE, decode, utc_now, utc_text
from topics.errors import EventfleetError, InvalidEnvelope, InvalidInput, NotFound, Unavailable
from topics.jsonvalue import Json, JsonObject
from workers.ports import (
    RETRYING,
    STATUSES,
    STUCK,
    ActionLog,
    Deadline,
    Instance,
    OperatorAction,
    ProcessInstances,
)
from workers.roles.deadletter import check_operator

MAX_PAGE = 500
DEFAULT_PAGE = 50


class Moved(Unavailable):
    """The instance kept changing under the retry's write."""

    service = "store"
    code = "store_unavailable"


class NotStuck(EventfleetError):
    """A retry asked of an instance that is not stuck (its ``instance_status`` says what it is)."""

    code = "instance_not_stuck"

    def __init__(self, message: str, instance_status: str) -> None:
        super().__init__(message)
        self.instance_status = instance_status

    def details(self) -> JsonObject:
        return {"instance_status": self.instance_status}


def retry_settled(instance: Instance) -> bool:
    """Whether a retry asked of ``instance`` has come to its outcome: stuck again, or taken by
    the pm role with its outbox sent (``active`` with commands still to send is under way)."""
    return instance.status == STUCK or (instance.status != RETRYING and not instance.outbox)


@dataclass(frozen=True, slots=True)
class Summary:
    """One process manager as the desk lists it."""

    manager: ProcessManager
    counts: Mapping[str, int]

    def as_dict(self) -> JsonObject:
        m = self.manager
        return {
            "name": m.name,
            "principal": m.principal,
            "roles": list(m.roles),
            "starts_on": _phase(m, "start"),
            "advances_on": _phase(m, "advance"),
            "ends_on": _phase(m, "end"),
            "sends": sorted(f"{t}.{e}" for t, e in m.commands()),
            "instances": dict(self.counts),
        }


def _phase(manager: ProcessManager, phase: str) -> list[str]:
    return sorted(f"{t}.{e}" for t, e in manager.triggers(phase))


class ProcessDesk:
    """What operators ask of the process managers; every name and parameter checked first."""

    def __init__(
        self,
        *,
        processes: Processes,
        instances: ProcessInstances,
        log: ActionLog,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.processes = processes
        self._instances = instances
        self._log = log
        self._now = now

    async def overview(self) -> list[Summary]:
        return [Summary(m, await self._instances.counts(m.name)) for m in self.processes]

    async def page(
        self,
        name: str,
        *,
        status: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[Instance], str | None]:
        """A page of ``name``'s instances by key, and the key to ask ``after`` next (None: the
        last page)."""
        manager = self.processes.get(name)
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status {status!r} is none of {', '.join(STATUSES)}.")
        if after is not None:
            check_key(after, "after")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit {limit} must be 1 to {MAX_PAGE}.")
        found = await self._instances.page(
            manager.name, status=status, after=after, limit=limit + 1
        )
        more = len(found) > limit
        return found[:limit], (found[limit - 1].key if more else None)

    async def show(self, name: str, key: str) -> Instance:
        manager = self.processes.get(name)
        check_key(key, "key")
        found = (await self._instances.load(manager.name, [key])).get(key)
        if found is None:
            raise NotFound(f"process {manager.name} has no instance {key!r}.")
        return found

    async def deadlines(
        self, name: str, *, limit: int = DEFAULT_PAGE
    ) -> list[tuple[str, Deadline]]:
        """``name``'s pending deadlines, the soonest first (instance key, deadline)."""
        manager = self.processes.get(name)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit {limit} must be 1 to {MAX_PAGE}.")
        found = await self._instances.upcoming(manager.name, limit=limit)
        pending = [(i.key, d) for i in found for d in i.deadlines]
        return sorted(pending, key=lambda pair: (pair[1].due_at, pair[0]))[:limit]

    async def retry(self, name: str, key: str, *, operator: str, via: str) -> Instance:
        """Ask the role to retry a stuck instance; NotStuck when it is not (nothing changes)."""
        who = check_operator(operator, "retries")
        for _ in range(10):  # the role may be writing it (an event held): read it again
            found = await self.show(name, key)
            if found.status != STUCK:
                why = "its retry is under way" if found.status == RETRYING else "nothing to do"
                raise NotStuck(
                    f"{name}/{key} is {found.status}, not stuck: only a stuck instance is "
                    f"retried ({why}).",
                    found.status,
                )
            asked = replace(
                found, status=RETRYING, revision=found.revision + 1, updated_at=self._now()
            )
            if await self._instances.save(asked):
                break
        else:
            raise Moved(f"{name}/{key} kept changing while its retry was asked; ask again.")
        await self._log.record(
            OperatorAction(
                id=str(uuid.uuid4()),
                at=self._now(),
                operator=who,
                via=via,
                action="pm_retry",
                target=f"{name}/{key}",
                submitted={"process": name, "key": key},
                status=202,
                result={"status": RETRYING, "was": _stuck_of(found)},
            )
        )
        return asked


def check_key(key: str, what: str) -> str:
    if not AGGREGATE_ID_RE.match(key):
        raise InvalidInput(f"{what} {key!r:.140} must match {AGGREGATE_ID_RE.pattern}.")
    return key


def _stuck_of(instance: Instance) -> JsonObject:
    s = instance.stuck
    return {} if s is None else {"reason": s.reason, "detail": s.detail, "attempts": s.attempts}


def instance_dict(instance: Instance) -> JsonObject:
    """An instance as the API and the CLI show it."""
    return {
        "process": instance.process,
        "key": instance.key,
        "status": instance.status,
        "revision": instance.revision,
        "state": instance.state,
        "started_at": _when(instance.started_at),
        "updated_at": _when(instance.updated_at),
        "seen": dict(instance.seen),
        "next_due": _when(instance.next_due),
        "deadlines": [deadline_dict(d) for d in instance.deadlines],
        "fired": [
            {
                "id": f.id,
                "name": f.name,
                "due_at": _when(f.due_at),
                "fired_at": _when(f.fired_at),
                "late_s": round((f.fired_at - f.due_at).total_seconds(), 3),
            }
            for f in instance.fired
        ],
        "outbox": [
            {
                "command_id": c.command_id,
                "aggregate_type": c.aggregate_type,
                "aggregate_id": c.aggregate_id,
                "type": c.type,
                "data": c.data,
            }
            for c in instance.outbox
        ],
        "held": [_held(raw) for raw in instance.held],
        "stuck": _stuck_dict(instance),
        "retries": instance.retries,
    }


def deadline_dict(deadline: Deadline) -> JsonObject:
    return {
        "id": deadline.id,
        "name": deadline.name,
        "due_at": _when(deadline.due_at),
        "data": deadline.data,
    }


def _stuck_dict(instance: Instance) -> JsonObject | None:
    s = instance.stuck
    if s is None:
        return None
    trigger: Json = None
    if s.trigger is not None and s.trigger.event is not None:
        trigger = {"event": _held(s.trigger.event)}
    elif s.trigger is not None and s.trigger.deadline is not None:
        trigger = {"deadline": deadline_dict(s.trigger.deadline)}
    return {
        "reason": s.reason,
        "detail": s.detail,
        "at": _when(s.at),
        "attempts": s.attempts,
        "trigger": trigger,
    }


def _held(raw: bytes) -> JsonObject:
    try:
        event = decode(raw)
    except InvalidEnvelope:
        return {"undecodable": len(raw)}
    return {
        "id": event.id,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "type": event.type,
        "version": event.version,
    }


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else utc_text(moment)
