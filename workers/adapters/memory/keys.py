"""Data keys per subject in memory, with the erasures that destroyed them (tests, ``memory``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from topics.errors import StoreUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.ports import DataKey, Erasure


class MemoryKeyStore(Switchable):
    """One live key per subject; an erased key is gone, its erasure kept in its place (each
    call is one step of the event loop, so erasing is atomic as in MongoDB)."""

    def __init__(self) -> None:
        self.faults = Faults(lambda what: StoreUnavailable(down_message("key store", what)))
        self._by_subject: dict[str, DataKey] = {}
        self._by_id: dict[str, DataKey] = {}
        self._erasures: dict[str, Erasure] = {}

    async def key_for(self, subject: str) -> DataKey:
        await self.faults.enter("key_for", f"reading the data key of subject {subject}")
        key = self._by_subject.get(subject)
        if key is None:  # never sealed, or erased: a new key (the erasure is kept apart)
            key = DataKey(uuid.uuid4().hex, subject, os.urandom(32))
            self._by_subject[subject] = key
            self._by_id[key.key_id] = key
        return key

    async def live(self, subjects: Sequence[str]) -> dict[str, str]:
        await self.faults.enter("live", f"checking the data keys of {len(subjects)} subjects")
        return {s: self._by_subject[s].key_id for s in subjects if s in self._by_subject}

    async def find(self, key_ids: Sequence[str]) -> dict[str, DataKey]:
        await self.faults.enter("find", f"reading {len(key_ids)} data keys")
        return {i: self._by_id[i] for i in key_ids if i in self._by_id}

    async def erase(self, subject: str, *, by: str, at: datetime) -> Erasure | None:
        await self.faults.enter("erase", f"erasing subject {subject}")
        key = self._by_subject.pop(subject, None)
        if key is None:
            first = self._erasures.get(subject)
            return None if first is None else replace(first, already=True, keys_destroyed=0)
        del self._by_id[key.key_id]
        erasure = Erasure(subject, at, by, 1)
        self._erasures[subject] = erasure
        return erasure
