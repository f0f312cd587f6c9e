"""Personal data's keys: one data key per subject, and its destruction (crypto-shredding)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DataKey:
    """One subject's data key (256-bit AES-GCM), named by ``key_id`` in every value it sealed."""

    key_id: str
    subject: str
    secret: bytes


@dataclass(frozen=True, slots=True)
class Erasure:
    """A subject's erasure: when, by whom, how many keys it destroyed; ``already`` when the
    subject had been erased before and held no key since (the first erasure is answered)."""

    subject: str
    erased_at: datetime
    by: str
    keys_destroyed: int
    already: bool = False


class KeyStore(Protocol):
    """Data keys per subject, and their destruction (crypto-shredding).

    A key's secret is kept wrapped by a master key the adapter holds (MongoDB: from a file or
    an environment secret; a Vault or cloud KMS adapter would wrap and unwrap through its API).
    A subject has at most one live key; erasing replaces it by a tombstone (who, when) in one
    atomic step. StoreUnavailable when the store does not answer.
    """

    async def key_for(self, subject: str) -> DataKey:
        """The subject's live key, created on first use: concurrent callers get one key.
        After an erasure a new key is made (the subject may come back): what was sealed
        before stays unreadable."""
        ...

    async def live(self, subjects: Sequence[str]) -> dict[str, str]:
        """The key id of each subject's live key, in one read; a subject without one (never
        sealed, or erased since) is absent. Linearized with ``erase``: a call that starts after
        an ``erase`` returned never names the key it destroyed. The sealing side checks its
        cached keys with it before it seals."""
        ...

    async def find(self, key_ids: Sequence[str]) -> dict[str, DataKey]:
        """The keys of these ids; an unknown or destroyed key is absent."""
        ...

    async def erase(self, subject: str, *, by: str, at: datetime) -> Erasure | None:
        """Destroy the subject's live key and record the erasure in its place, atomically: of
        concurrent callers exactly one destroys it (``keys_destroyed`` 1); every other one,
        and any later one while no new key was made, is answered that erasure with
        ``already``. None for a subject with neither a key nor an erasure (nothing of it was
        ever sealed)."""
        ...
