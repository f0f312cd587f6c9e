"""The in-memory operator audit trail: actions by id, read back newest first."""

from __future__ import annotations

from dataclasses import replace

from topics.errors import StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, as_stored, down_message
from workers.ports import ActionLog, OperatorAction


class MemoryActionLog(Switchable):
    """``ActionLog`` in a dictionary; recording an id again keeps the first action."""

    def __init__(self) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("action log", what)))
        self._by_id: dict[str, OperatorAction] = {}

    async def record(self, action: OperatorAction) -> None:
        await self.faults.enter("record", f"recording operator action {action.id}")
        self._by_id.setdefault(action.id, _copy(action))

    async def recent(self, *, limit: int) -> list[OperatorAction]:
        await self.faults.enter("recent", "reading the operator audit trail")
        newest = sorted(self._by_id.values(), key=lambda a: (a.at, a.id), reverse=True)
        return [_copy(action) for action in newest[:limit]]


def _copy(action: OperatorAction) -> OperatorAction:
    """As a store gives it back: payloads copied, the time in UTC milliseconds."""
    return replace(
        action,
        at=as_stored(action.at),
        submitted=as_stored(action.submitted),
        result=as_stored(action.result),
    )


def _implements(log: MemoryActionLog) -> ActionLog:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return log
