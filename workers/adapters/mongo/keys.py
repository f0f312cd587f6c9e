"""Data keys in MongoDB, each wrapped by the master key (AES-GCM); an erasure in its key's place.

``data_keys``: one document per subject. Live: ``{_id: subject, key_id, wrapped, created_at}``,
the wrapped secret being nonce + AES-GCM(master key, secret, associated data = key id): a copy
of the collection alone reveals no key. Erased: the same document with ``wrapped`` (the only
copy of the key) removed and ``{erased_at, by, keys_destroyed}`` set, in one
``find_one_and_update`` that returns the document as it was, so exactly one of concurrent
erasers finds the key; ``key_id`` stays, naming the destroyed key. A new key for the subject
overwrites the tombstone. ``erasures`` holds erasures made before tombstones (read only).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import datetime

from bson import Binary
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from topics.envelope import utc_now
from topics.errors import ConfigError, StoreError
from workers.adapters.mongo.client import Document, durable, translated
from workers.ports import DataKey, Erasure

DATA_KEYS = "data_keys"
ERASURES = "erasures"
_NONCE = 12
_LIVE = {"wrapped": {"$exists": True}}
_GONE = {"wrapped": {"$exists": False}}
_ERASURE = {"erased_at": "", "by": "", "keys_destroyed": ""}
_ERASE_ATTEMPTS = 5
NO_MASTER_KEY = (
    "no master key wraps the data keys: set EVENTFLEET_MASTER_KEY_FILE or "
    "EVENTFLEET_MASTER_KEY_ENV (32 bytes in base64)."
)


class MongoKeyStore:
    """``KeyStore`` on ``data_keys`` (keys, tombstones); the master key never leaves here."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        master_key: bytes | None,
        *,
        keys: str = DATA_KEYS,
        erasures: str = ERASURES,
    ) -> None:
        self._cipher = None if master_key is None else AESGCM(master_key)
        self.keys = durable(db, keys)
        self.erasures = durable(db, erasures)

    async def ensure_indexes(self) -> None:
        async with translated("creating the data key index"):
            await self.keys.create_index("key_id", unique=True, name="key_id")

    async def key_for(self, subject: str) -> DataKey:
        async with translated(f"reading the data key of subject {subject}"):
            doc = await self.keys.find_one({"_id": subject, **_LIVE})
        if doc is not None:
            return self._unwrapped(doc)
        key_id, secret = uuid.uuid4().hex, os.urandom(32)
        fresh = {"key_id": key_id, "wrapped": self._wrap(key_id, secret), "created_at": utc_now()}
        try:  # no document, or a tombstone: the new key takes its place
            async with translated(f"making a data key for subject {subject}", write=True):
                doc = await self.keys.find_one_and_update(
                    {"_id": subject, **_GONE},
                    {"$set": fresh, "$unset": _ERASURE},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
        except StoreError as e:  # a racing first key for the subject won the insert
            if not isinstance(e.__cause__, DuplicateKeyError):
                raise
        if doc is None:  # the race's loser (some servers answer no document): read the winner
            async with translated(f"reading the data key of subject {subject}"):
                doc = await self.keys.find_one({"_id": subject, **_LIVE})
        return self._unwrapped(doc)

    async def live(self, subjects: Sequence[str]) -> dict[str, str]:
        if not subjects:
            return {}
        query = {"_id": {"$in": list(set(subjects))}, **_LIVE}
        async with translated(f"checking the data keys of {len(subjects)} subjects"):
            return {d["_id"]: d["key_id"] async for d in self.keys.find(query, {"key_id": 1})}

    async def find(self, key_ids: Sequence[str]) -> dict[str, DataKey]:
        if not key_ids:
            return {}
        async with translated(f"reading {len(key_ids)} data keys"):
            query = {"key_id": {"$in": list(set(key_ids))}, **_LIVE}
            docs = [d async for d in self.keys.find(query)]
        return {d["key_id"]: self._unwrapped(d) for d in docs}

    async def erase(self, subject: str, *, by: str, at: datetime) -> Erasure | None:
        tombstone = {
            "$set": {"erased_at": at, "by": by, "keys_destroyed": 1},
            "$unset": {"wrapped": "", "created_at": ""},
        }
        for _ in range(_ERASE_ATTEMPTS):
            async with translated(f"erasing subject {subject}", write=True):
                was = await self.keys.find_one_and_update(
                    {"_id": subject, **_LIVE}, tombstone, return_document=ReturnDocument.BEFORE
                )
                if was is not None:  # this call destroyed the key
                    return Erasure(subject, at, by, 1)
                doc = await self.keys.find_one({"_id": subject})
                if doc is None:  # never sealed here, or erased before tombstones were kept
                    doc = await self.erasures.find_one({"_id": subject})
                    if doc is None:
                        return None
            if "erased_at" in doc:
                return Erasure(subject, doc["erased_at"], doc["by"], 0, already=True)
            # a new key was made between the two reads: destroy that one
        raise StoreError(
            f"subject {subject} got a new data key each time it was erased "
            f"({_ERASE_ATTEMPTS} times); its writers are busy: erase it again."
        )

    @property
    def _master(self) -> AESGCM:
        if self._cipher is None:  # erasing needs no master key: only making and opening keys
            raise ConfigError(NO_MASTER_KEY)
        return self._cipher

    def _wrap(self, key_id: str, secret: bytes) -> Binary:
        nonce = os.urandom(_NONCE)
        return Binary(nonce + self._master.encrypt(nonce, secret, key_id.encode()))

    def _unwrapped(self, doc: Document | None) -> DataKey:
        if doc is None:  # erased between the upsert and the read that followed a lost race
            raise StoreError("the data key store answered no key for an upsert.")
        wrapped = bytes(doc["wrapped"])
        try:
            secret = self._master.decrypt(
                wrapped[:_NONCE], wrapped[_NONCE:], doc["key_id"].encode()
            )
        except InvalidTag:
            raise StoreError(
                f"the data key of subject {doc['_id']} does not open with this master key: "
                "EVENTFLEET_MASTER_KEY_FILE or _ENV names another key than the one that wrapped it."
            ) from None
        return DataKey(doc["key_id"], doc["_id"], secret)
