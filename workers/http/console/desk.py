"""The dead-letter desk: the console's and the CLI's one way to list, inspect and replay."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace

from topics.envelope import Actor, utc_now
from topics.jsonvalue import Json, JsonObject
from workers.ports import OperatorAction, ParkedEntry
from workers.roles.command.requests import CommandRequest
from workers.roles.deadletter import check_operator
from workers.roles.ops.dlq_replay import (
    DeadLetterEntry,
    DeadLetterReplayer,
    check_parked,
    entries_of,
    find_entry,
    skip_parked,
)
from workers.roles.outcomes import Outcome
from workers.runtime.answers import answer_of
from workers.runtime.compose import Runtime

READ_TIMEOUT_S = 15.0
QUEUE_SHOWN = 50  # entries of a parked queue shown
SKIP = "dlq_skip"
"""The audit trail's action of an operator who decided a dead letter needs nothing."""


class DeadLetterDesk:
    """Reads the dead-letter topic and replays its entries through this process's command path."""

    def __init__(self, runtime: Runtime, *, via: str) -> None:
        self._runtime = runtime
        self._via = via
        self.log = runtime.stores.actions

    @property
    def topic(self) -> str:
        return self._runtime.names.dlq

    async def entries(self) -> list[DeadLetterEntry]:
        """Every entry of the dead-letter topic (StreamUnavailable when Kafka does not answer)."""
        records = await self._runtime.adapters.stream.read(self.topic, timeout_s=READ_TIMEOUT_S)
        return entries_of(records)

    async def entry(self, position: str) -> DeadLetterEntry:
        """The entry at ``<partition>/<offset>``: InvalidInput for a bad name, NotFound if none."""
        return find_entry(await self.entries(), position)

    def replayer(self, actor: Actor | None = None) -> DeadLetterReplayer:
        """Raises RoleNotRunning in a process without the commands role. ``actor``: who
        replays, authenticated; the re-submitted event records it and its rules judge it."""
        rt = self._runtime
        commands = rt.commands

        async def submit(request: CommandRequest) -> Outcome:
            return await commands.handle(replace(request, actor=actor))

        return DeadLetterReplayer(
            submit=submit,
            render=answer_of,
            log=self.log,
            stored_topic=rt.names.stored,
            via=self._via,
            max_bytes=rt.settings.max_body_bytes,
            parked=rt.stores.parked,
        )

    async def replay(
        self,
        entry: DeadLetterEntry,
        submission: Mapping[str, Json],
        *,
        operator: str,
        actor: Actor | None = None,
    ) -> OperatorAction:
        return await self.replayer(actor).replay(entry, submission, operator=operator)

    async def skip(self, entry: DeadLetterEntry, *, operator: str) -> OperatorAction:
        """An audited decision that an entry needs nothing. The head of a parked aggregate's
        queue is skipped for the appender too: it releases the rest, each judged again.
        InvalidInput for an entry behind its head (nothing is recorded)."""
        who = check_operator(operator)
        released = await skip_parked(self._runtime.stores.parked, entry, who)
        result: JsonObject = {"skipped": True}
        if released and entry.parked is not None:
            result["releases"] = entry.parked[0]
        action = OperatorAction(
            id=str(uuid.uuid4()),
            at=utc_now(),
            operator=who,
            via=self._via,
            action=SKIP,
            target=entry.position,
            submitted={},
            status=200,
            result=result,
        )
        await self.log.record(action)
        return action

    async def check_parked(self, entry: DeadLetterEntry) -> None:
        """InvalidInput for an entry of a parked queue that is not its head (nothing changes)."""
        await check_parked(self._runtime.stores.parked, entry)

    async def parked(
        self, *, limit: int = QUEUE_SHOWN
    ) -> list[tuple[ParkedEntry, int, list[ParkedEntry]]]:
        """Every parked aggregate: its head, its highest seq and the first ``limit`` entries."""
        store = self._runtime.stores.parked
        heads = await store.heads()
        return [
            (head, last, await store.queue(key, limit=limit))
            for key, (head, last) in sorted(heads.items())
        ]

    async def actions(self, *, limit: int = 100) -> list[OperatorAction]:
        return await self.log.recent(limit=limit)
