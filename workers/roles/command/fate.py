"""What became of a command: its recorded outcome brought up to date with the store.

Both modes ask it when a command id comes back (a retry) or an earlier attempt went unanswered:
the store's copy of the event, or its refusal at the store, is the truth, and is recorded as
the command's outcome so the next retry is told it at once.
"""

from __future__ import annotations

from snapshot_rules.domain import Mode
from workers.ports import EventStore, Rejections
from workers.roles.command.intake import Command
from workers.roles.command.ledger import CommandLedger
from workers.roles.outcomes import Accepted, Outcome, Refused, Stored, refusal_at_store


class CommandFate:
    """Asks the store, and the store's refusals, what became of a command's event."""

    def __init__(self, *, store: EventStore, rejections: Rejections, ledger: CommandLedger) -> None:
        self._store = store
        self._rejections = rejections
        self._ledger = ledger

    async def recorded(self, c: Command, recorded: Accepted | Stored | Refused) -> Outcome:
        """A retry: the recorded outcome, brought up to date with the store (an accepted event
        may since have been stored, or refused at the store)."""
        if isinstance(recorded, Accepted):
            settled = await self.settled(c)
            if settled is not None:
                return settled
            return Accepted(recorded.event_id, recorded.partition, recorded.offset, duplicate=True)
        if isinstance(recorded, Stored):
            return Stored(recorded.event_id, recorded.version, recorded.published, duplicate=True)
        if recorded.at_store:
            # A copy dead-lettered first, and another stored since: the store is the truth.
            stored = await self.stored(c)
            if stored is not None:
                return stored
        return Refused(
            recorded.code,
            recorded.message,
            recorded.details,
            at_store=recorded.at_store,
            duplicate=True,
        )

    async def settled(self, c: Command) -> Outcome | None:
        """The outcome of an event the store already holds or refused; None if neither."""
        stored = await self.stored(c)
        if stored is not None:
            return stored
        refused = (await self._rejections.find([c.event_id])).get(c.event_id)
        if refused is not None:
            outcome = refusal_at_store(refused)
            await self._ledger.settle(c.key, c.memory_id, outcome)
            return outcome
        return None

    async def stored(self, c: Command) -> Accepted | Stored | None:
        """The command's event as the store holds it (recorded as its outcome), or None."""
        stored = await self._store.find([c.event_id], aggregates=[c.ref])
        if c.event_id not in stored:
            return None
        version = stored[c.event_id].version or 0
        outcome: Accepted | Stored
        if c.domain.mode is Mode.SYNC:
            outcome = Stored(c.event_id, version, duplicate=True)
        else:
            outcome = Accepted(c.event_id, version=version, duplicate=True)
        await self._ledger.settle(c.key, c.memory_id, outcome)
        return outcome
