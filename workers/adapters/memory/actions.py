"""The operator audit trail and the dead letters' first replays, in memory (the console's tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from topics.errors import StoreUnavailable
from topics.jsonvalue import Json
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.ports import ActionLog, OperatorAction, ReplayClaim


class MemoryActionLog(Switchable):
    """Actions by id, newest first when read; one first replay per dead letter."""

    def __init__(self) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("action log", what)))
        self._actions: dict[str, OperatorAction] = {}
        self._replays: dict[str, ReplayClaim] = {}

    async def record(self, action: OperatorAction) -> None:
        await self.faults.enter("record", f"recording operator action {action.id}")
        self._actions.setdefault(action.id, action)

    async def recent(self, *, limit: int) -> list[OperatorAction]:
        await self.faults.enter("recent", "reading the operator audit trail")
        # Newest first; actions at the same moment, latest recorded first.
        ordered = sorted(enumerate(self._actions.values()), key=lambda p: (p[1].at, p[0]))
        return [action for _, action in reversed(ordered)][:limit]

    async def claim_replay(self, claim: ReplayClaim) -> ReplayClaim | None:
        await self.faults.enter("claim_replay", f"claiming the replay of {claim.target}")
        first = self._replays.get(claim.target)
        if first is None:
            self._replays[claim.target] = claim
        return first

    async def abandon_replay(self, claim: ReplayClaim) -> None:
        await self.faults.enter("abandon_replay", f"releasing the replay of {claim.target}")
        first = self._replays.get(claim.target)
        if first is not None and (first.submitted, first.operator, first.at) == (
            claim.submitted,
            claim.operator,
            claim.at,
        ):
            del self._replays[claim.target]

    async def settle_replay(self, target: str, status: int, result: Mapping[str, Json]) -> None:
        await self.faults.enter("settle_replay", f"recording the first replay of {target}")
        first = self._replays.get(target)
        if first is not None:
            self._replays[target] = replace(first, status=status, result=dict(result))


def _implements(log: MemoryActionLog) -> ActionLog:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return log
