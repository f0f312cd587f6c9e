"""In-memory process manager instances, kept in the stored form MongoDB keeps them in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from topics.errors import StoreUnavailable
from topics.jsonvalue import JsonObject
from workers.adapters.instances import from_document, instance_id, to_document
from workers.adapters.memory.common import Faults, Switchable, as_stored, down_message
from workers.ports.process import RETRYING, STATUSES, STUCK, Instance, ProcessInstances


class MemoryProcessInstances(Switchable):
    """Instance documents by id, written only over the revision they were read at."""

    def __init__(self) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("process store", what)))
        self._docs: dict[str, JsonObject] = {}

    async def load(self, process: str, keys: Sequence[str]) -> dict[str, Instance]:
        await self.faults.enter("load", f"loading {len(keys)} instances of {process}")
        docs = (self._docs.get(instance_id(process, key)) for key in set(keys))
        return {i.key: i for i in (from_document(d) for d in docs if d is not None)}

    async def save(self, instance: Instance) -> bool:
        doc = to_document(instance)
        await self.faults.enter("save", f"saving instance {doc['_id']}")
        current = self._docs.get(doc["_id"])
        expected = None if instance.revision == 1 else instance.revision - 1
        if (current["revision"] if current is not None else None) != expected:
            return False
        self._docs[doc["_id"]] = as_stored(doc)
        return True

    async def save_many(self, instances: Sequence[Instance], *, durable: bool = True) -> list[bool]:
        return [await self.save(instance) for instance in instances]

    async def due(self, now: datetime, *, limit: int) -> list[Instance]:
        await self.faults.enter("due", "reading due deadlines")
        return self._sorted(lambda d: _at_or_before(d.get("next_due"), now), "next_due", limit)

    async def retrying(self, *, limit: int) -> list[Instance]:
        await self.faults.enter("retrying", "reading instances to retry")
        return self._sorted(lambda d: d["status"] == RETRYING, "_id", limit)

    async def unsent(self, before: datetime, *, limit: int) -> list[Instance]:
        await self.faults.enter("unsent", "reading unsent commands")
        return self._sorted(
            lambda d: (
                d["status"] not in (STUCK, RETRYING)
                and _at_or_before(d.get("unsent_since"), before)
            ),
            "unsent_since",
            limit,
        )

    async def page(
        self, process: str, *, status: str | None = None, after: str | None = None, limit: int
    ) -> list[Instance]:
        await self.faults.enter("page", f"listing instances of {process}")
        return self._sorted(
            lambda d: (
                d["process"] == process
                and (status is None or d["status"] == status)
                and (after is None or d["key"] > after)
            ),
            "key",
            limit,
        )

    async def upcoming(self, process: str, *, limit: int) -> list[Instance]:
        await self.faults.enter("upcoming", f"reading deadlines of {process}")
        return self._sorted(
            lambda d: d["process"] == process and d.get("next_due") is not None, "next_due", limit
        )

    async def counts(self, process: str) -> dict[str, int]:
        await self.faults.enter("counts", f"counting instances of {process}")
        found = dict.fromkeys(STATUSES, 0)
        for doc in self._docs.values():
            if doc["process"] == process:
                found[doc["status"]] += 1
        return found

    def _sorted(self, keep: Callable[[JsonObject], bool], order: str, limit: int) -> list[Instance]:
        docs = sorted((d for d in self._docs.values() if keep(d)), key=lambda d: d[order])
        # every doc kept has ``order`` set: the keep functions ask for it
        return [from_document(d) for d in docs[:limit]]


def _at_or_before(moment: datetime | None, bound: datetime) -> bool:
    return moment is not None and moment <= bound


def _implements(store: MemoryProcessInstances) -> ProcessInstances:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return store
