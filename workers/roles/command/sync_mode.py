"""Sync mode: take the write from its budget, claim the command id, validate on the latest state,
store, then publish.

The answer is ``Stored`` with the event's version, a refusal of the state's rules or of a stale
expected version, ``Unknown`` when the store went unanswered, or the recorded outcome of a
retry (``fate``).
"""

from __future__ import annotations

from topics.errors import (
    ConcurrencyConflict,
    OutcomeUnknown,
    TransitionRejected,
    WrongExpectedVersion,
)
from workers.ports import BudgetDraw, CommandRecord, SyncAppender
from workers.roles.command.budget import WriteBudget
from workers.roles.command.fate import CommandFate
from workers.roles.command.intake import Command
from workers.roles.command.ledger import ClaimHeld, CommandLedger, claim_waits, in_progress
from workers.roles.outcomes import Outcome, Stored, Unknown, decode


class SyncCommandService:
    """Stores through the sync appender; a command id is claimed first, without a mark."""

    def __init__(
        self,
        *,
        ledger: CommandLedger,
        appender: SyncAppender,
        fate: CommandFate,
        answer_wait_s: float = 10.0,
        budget: WriteBudget | None = None,
    ) -> None:
        self._ledger = ledger
        self._appender = appender
        self._fate = fate
        self._claims = claim_waits(answer_wait_s)
        self._budget = budget

    @property
    def appender(self) -> SyncAppender:
        """What stores the writes: also the one an append across aggregates goes through."""
        return self._appender

    async def append(self, c: Command, draw: BudgetDraw | None = None) -> Outcome:
        """``draw``: the write's draw on its principal's budget, taken first (its own call)."""
        if draw is not None and self._budget is not None:
            refused = await self._budget.take(draw)
            if refused is not None:
                return refused  # nothing claimed, nothing stored
        takeover = False
        if c.memory_id is not None:
            found = await self._ledger.claim(c.key, c.memory_id, c.event_id, c.token)
            if found is not None and found.state == "answered":
                return await self._fate.recorded(c, decode(found.answer))
            if found is not None and found.state == "pending":
                return await self._wait_for_claim(c, found)
            takeover = found is not None  # over an unknown attempt
        try:
            result = await self._appender.append(
                c.domain,
                c.request.aggregate_id,
                c.request.type,
                c.request.data,
                c.metadata(),
                event_id=c.event_id,
                data_checked=True,
                expected_version=c.request.expected_version,
            )
        except (TransitionRejected, ConcurrencyConflict, WrongExpectedVersion):
            # A retry of a command that was stored finds the aggregate past its expectation
            # (its own event moved it): the store's copy answers it, as a duplicate.
            if c.command_id is not None:
                settled = await self._fate.settled(c)
                if settled is not None:
                    return settled
                if takeover:
                    await self._ledger.unknown(c.key, c.memory_id, c.event_id)
                    raise
            await self._ledger.release(c.key, c.memory_id, c.token)
            raise
        except OutcomeUnknown as e:
            await self._ledger.unknown(c.key, c.memory_id, c.event_id)
            return Unknown(c.event_id, c.command_id, str(e), e.service)
        except BaseException:
            await self._ledger.release(c.key, c.memory_id, c.token)
            raise
        version = result.event.version or 0
        stored = Stored(result.event.id, version, result.published, result.duplicate)
        await self._ledger.settle(c.key, c.memory_id, stored)
        return stored

    async def _wait_for_claim(self, c: Command, found: CommandRecord | None) -> Outcome:
        """Another request holds the claim (``found``, the first try): claim again on
        ``claim_waits`` until it answers or lets go."""
        memory_id = c.memory_id
        assert memory_id is not None
        try:
            async for attempt in self._claims.tries(ClaimHeld):
                with attempt:
                    if attempt.num > 1:
                        found = await self._ledger.claim(c.key, memory_id, c.event_id, c.token)
                    if found is None or found.state == "unknown":
                        return await self.append(c)  # the claim is ours now
                    if found.state == "answered":
                        return await self._fate.recorded(c, decode(found.answer))
                    raise ClaimHeld(c.command_id)
        except ClaimHeld:
            pass
        return in_progress(c.command_id)
