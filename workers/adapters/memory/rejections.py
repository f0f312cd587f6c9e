"""In-memory rejections: events the appender refused, by id, as the MongoDB store keeps them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from topics.errors import StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message, stored_time
from workers.ports import STORE_VERDICTS, Rejection, Rejections


class MemoryRejections(Switchable):
    """Refused events by id; recording one again keeps the first, but a verdict replaces a
    dead-lettered copy's fate."""

    def __init__(self) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("rejections", what)))
        self._by_id: dict[str, Rejection] = {}

    async def record(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        await self.faults.enter("record", f"recording {len(rejections)} rejected events")
        for rejection in rejections:  # the time as a document store keeps it
            stored = replace(rejection, rejected_at=stored_time(rejection.rejected_at))
            first = self._by_id.get(rejection.event_id)
            if first is None or (
                rejection.reason in STORE_VERDICTS and first.reason not in STORE_VERDICTS
            ):
                self._by_id[rejection.event_id] = stored

    async def find(self, event_ids: Sequence[str]) -> dict[str, Rejection]:
        if not event_ids:
            return {}
        await self.faults.enter("find", f"looking up {len(event_ids)} rejected events")
        return {i: self._by_id[i] for i in event_ids if i in self._by_id}


def _implements(rejections: MemoryRejections) -> Rejections:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return rejections
