"""Crypto-shredding: personal fields sealed per subject before anything is produced, opened by
every reader, unreadable everywhere once the subject's key is destroyed.

``seal`` replaces each declared personal field of an event's data with
``sealed:v1:<key id>:<base64url(nonce + AES-GCM ciphertext)>`` (the plaintext is the field's
JSON; the associated data is the key id). Everything downstream of the command side carries
that string: topics, the store, snapshots, views, dead letters. ``open`` walks any answer
(events, states, views) and opens the sealed strings it finds; a value whose key was destroyed
becomes null and its object says ``"erased": true``.

Sealing never uses a destroyed key once its erasure was answered: before each seal the cached
key is checked against the store (``KeyStore.live``, one read for every seal waiting in the
same turn of the event loop, sent after each of them began), and a key that is no longer live
is replaced by the subject's new one. Opening keys are cached per process for
``cache_ttl_s``: after an erasure in another process, this one may still open the destroyed
key's values for at most that long; the erasing process forgets it at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snapshot_rules.domain import Domain
from snapshot_rules.personal import SEALED_PREFIX, is_sealed, subject_problem
from topics.envelope import Event, utc_now
from topics.errors import InvalidEventData
from topics.jsonvalue import Json, JsonObject
from workers.ports import ActionLog, DataKey, Erasure, KeyStore, OperatorAction, Told
from workers.roles.deadletter import check_operator
from workers.roles.outcomes import Refused

log = logging.getLogger(__name__)

ERASED = "erased"
"""The flag an object gets when one of its personal fields was erased."""
MAX_CACHED = 100_000
_NONCE = 12


@dataclass(frozen=True, slots=True)
class _Cached:
    key: DataKey | None  # None: the key is unknown or destroyed
    until: float


class Shredder:
    """Seals and opens personal fields with per-subject keys from a ``KeyStore``, and erases."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        enabled: bool = True,
        cache_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self.enabled = enabled
        self._ttl = cache_ttl_s
        self._clock = clock
        self._by_subject: dict[str, DataKey] = {}
        self._by_id: dict[str, _Cached] = {}
        self._checks = _LiveChecks(keys)

    # --- sealing (the command side) ------------------------------------------------------------

    async def seal(
        self, domain: Domain, aggregate_id: str, data: Mapping[str, Json]
    ) -> Mapping[str, Json]:
        """``data`` with the domain's personal fields sealed (unchanged when it has none)."""
        personal = domain.personal
        if personal is None or not self.enabled or not personal.fields & data.keys():
            return data
        subject = personal.subject_of(aggregate_id, data)
        if subject is None:
            return data
        problem = subject_problem(subject)
        if problem is not None:  # sealed under it, it could never be erased
            named = f"data.{personal.subject}" if personal.subject else "aggregate_id"
            raise InvalidEventData(f"{named} {problem}.")
        key = await self._key_for(subject)
        return {
            name: seal_value(key, value)
            if name in personal.fields and not is_sealed(value)
            else value
            for name, value in data.items()
        }

    async def _key_for(self, subject: str) -> DataKey:
        """The subject's live key: the cached one if the store, asked after this call began,
        still names it; else the store's (a new one after an erasure)."""
        live = await self._checks.key_id(subject)
        cached = self._by_subject.get(subject)
        if cached is not None and cached.key_id == live:
            return cached
        if cached is not None:  # destroyed (a key id is never live again): no longer opened here
            self._by_id[cached.key_id] = _Cached(None, self._clock() + self._ttl)
        key = await self._keys.key_for(subject)
        if len(self._by_subject) >= MAX_CACHED:
            self._by_subject.clear()
        self._by_subject[subject] = key
        self._remember(self._by_id, key.key_id, key, self._clock())
        return key

    # --- opening (every reader) ----------------------------------------------------------------

    async def open(self, value: Json) -> Json:
        """``value`` (any JSON-like answer) with every sealed string opened or marked erased."""
        ids: set[str] = set()
        _collect(value, ids)
        if not ids:
            return value
        opened = _opened(value, await self._find(ids))
        return None if opened is _GONE else opened

    async def open_events(self, events: Sequence[Event]) -> list[Event]:
        """The events with their data opened (one key lookup for the whole page)."""
        ids: set[str] = set()
        for e in events:
            _collect(e.data, ids)
        if not ids:
            return list(events)
        keys = await self._find(ids)
        return [replace(e, data=_opened(e.data, keys)) for e in events]

    def open_events_now(self, events: Sequence[Event]) -> list[Event] | None:
        """``open_events`` without waiting: the events opened with the keys this process holds
        now (as ``open_events`` would open them), or None when one must be fetched first."""
        ids: set[str] = set()
        for e in events:
            _collect(e.data, ids)
        if not ids:
            return list(events)
        now = self._clock()
        keys: dict[str, DataKey] = {}
        for key_id in ids:
            cached = self._by_id.get(key_id)
            if cached is None or cached.until <= now:
                return None
            if cached.key is not None:
                keys[key_id] = cached.key
        return [replace(e, data=_opened(e.data, keys)) for e in events]

    async def _find(self, ids: set[str]) -> dict[str, DataKey]:
        now = self._clock()
        found: dict[str, DataKey] = {}
        missing = []
        for key_id in ids:
            cached = self._by_id.get(key_id)
            if cached is None or cached.until <= now:
                missing.append(key_id)
            elif cached.key is not None:
                found[key_id] = cached.key
        if missing:
            fetched = await self._keys.find(missing)
            for key_id in missing:
                self._remember(self._by_id, key_id, fetched.get(key_id), now)
            found.update(fetched)
        return found

    def _remember(
        self, cache: dict[str, _Cached], name: str, key: DataKey | None, now: float
    ) -> None:
        if len(cache) >= MAX_CACHED:  # bounded in size too: drop what expired, else everything
            for stale in [n for n, c in cache.items() if c.until <= now]:
                del cache[stale]
            if len(cache) >= MAX_CACHED:
                cache.clear()
        cache[name] = _Cached(key, now + self._ttl)

    # --- erasing -------------------------------------------------------------------------------

    async def erase(self, subject: str, *, by: str, at: datetime) -> Erasure | None:
        """Destroy the subject's keys (``KeyStore.erase``) and forget them in this process."""
        erasure = await self._keys.erase(subject, by=by, at=at)
        _cipher.cache_clear()
        self._by_subject.pop(subject, None)
        for key_id in [i for i, c in self._by_id.items() if c.key and c.key.subject == subject]:
            self._by_id[key_id] = _Cached(None, self._clock() + self._ttl)
        return erasure


class _LiveChecks:
    """``KeyStore.live`` for many sealers at once: the subjects asked for in one turn of the
    event loop go in one read, sent after each of them was asked (never an earlier read's
    answer: that one may predate an erasure the caller was told of)."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys
        self._waiting: dict[str, list[asyncio.Future[str | None]]] = {}
        self._reads: set[asyncio.Task[None]] = set()

    async def key_id(self, subject: str) -> str | None:
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._send)
        future: asyncio.Future[str | None] = loop.create_future()
        self._waiting.setdefault(subject, []).append(future)
        return await future

    def _send(self) -> None:
        batch, self._waiting = self._waiting, {}
        task = asyncio.get_running_loop().create_task(self._read(batch))
        self._reads.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._reads.discard)

    async def _read(self, batch: dict[str, list[asyncio.Future[str | None]]]) -> None:
        futures = [f for waiting in batch.values() for f in waiting]
        try:
            live = await self._keys.live(list(batch))
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
        except Exception as e:  # every waiter gets the store's error (StoreUnavailable: 503)
            for future in futures:
                if not future.done():
                    future.set_exception(e)
            return
        for subject, waiting in batch.items():
            for future in waiting:
                if not future.done():
                    future.set_result(live.get(subject))


@functools.lru_cache(maxsize=1024)
def _cipher(key_id: str, secret: bytes) -> AESGCM:
    """A key's cipher, built once (its key schedule costs more than sealing a short value). Only
    a caller holding the secret (from a live cache entry) reaches it; an erasure clears it."""
    return AESGCM(secret)


def seal_value(key: DataKey, value: Json) -> str:
    """One value sealed with ``key``: a fresh nonce, the key id as associated data."""
    nonce = os.urandom(_NONCE)
    cipher = _cipher(key.key_id, key.secret)
    sealed = cipher.encrypt(nonce, orjson.dumps(value), key.key_id.encode())
    blob = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
    return f"{SEALED_PREFIX}{key.key_id}:{blob}"


def key_id_of(sealed: str) -> str:
    return sealed[len(SEALED_PREFIX) :].split(":", 1)[0]


def open_value(key: DataKey, sealed: str) -> Json:
    """The value ``sealed`` holds. ValueError when it is not one sealed with ``key``."""
    blob = sealed[len(SEALED_PREFIX) :].split(":", 1)[1]
    try:
        raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        cipher = _cipher(key.key_id, key.secret)
        plain = cipher.decrypt(raw[:_NONCE], raw[_NONCE:], key.key_id.encode())
    except (InvalidTag, binascii.Error, ValueError) as e:
        raise ValueError(f"a value sealed with key {key.key_id} does not open: {e!r}") from e
    return orjson.loads(plain)


def _collect(value: Json, ids: set[str]) -> None:
    if isinstance(value, str):
        if is_sealed(value):
            ids.add(key_id_of(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, ids)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, ids)


def _opened(value: Json, keys: Mapping[str, DataKey]) -> Json:
    if isinstance(value, str):
        return _open_one(value, keys) if is_sealed(value) else value
    if isinstance(value, Mapping):
        out: JsonObject = {}
        erased = False
        for name, item in value.items():
            if isinstance(item, str) and is_sealed(item):
                out[name] = _open_one(item, keys)
                erased = erased or out[name] is _GONE
                if out[name] is _GONE:
                    out[name] = None
            else:
                out[name] = _opened(item, keys)
        if erased:
            out[ERASED] = True
        return out
    if isinstance(value, list | tuple):
        return [None if (o := _opened(i, keys)) is _GONE else o for i in value]
    return value


_GONE = object()
"""A sealed value whose key is gone (erased), or that does not open with it."""


def _open_one(sealed: str, keys: Mapping[str, DataKey]) -> Json:
    key = keys.get(key_id_of(sealed))
    if key is None:
        return _GONE
    try:
        return open_value(key, sealed)
    except ValueError:
        log.warning("a sealed value under key %s does not open; shown as erased", key.key_id)
        return _GONE


@dataclass(frozen=True, slots=True)
class Erased:
    """A subject erased: by this call, or before it (``already``: nothing was left to destroy).
    Every copy is unreadable everywhere within ``unreadable_within_s`` (other processes'
    opening caches)."""

    subject: str
    erased_at: datetime
    by: str
    keys_destroyed: int
    already: bool
    unreadable_within_s: float


Render = Callable[[Erased], Told]
"""How the runtime tells an erasure (what the audit record keeps of it)."""


async def erase_subject(
    shredder: Shredder,
    log_: ActionLog,
    subject: str,
    *,
    operator: str,
    via: str,
    cache_ttl_s: float,
    render: Render,
) -> Erased | Refused:
    """Erase ``subject`` and record who did it, when, and what they were told (``render``), in
    the operator trail.

    ``Erased``, with ``already`` when it had been erased before and nothing was left to
    destroy (e.g. by a concurrent request: the store decides in one atomic step); refused
    ``not_found`` when nothing of the subject was ever sealed. The trail records each erasure
    once, by the call that destroyed the key: a repeat or an unknown subject changes nothing
    and is only answered. Every copy is unreadable here at once, everywhere within
    ``cache_ttl_s``; no process seals with the destroyed key once this returns. Errors of the
    key store (``StoreUnavailable``) are raised, and nothing is recorded. An operator name
    ``check_operator`` refuses is ``InvalidInput``, before anything is done: the trail records
    names a reader can print.
    """
    operator = check_operator(operator, "erases")
    at = utc_now()
    erasure = await shredder.erase(subject, by=operator, at=at)
    if erasure is None:
        return Refused(
            "not_found",
            f"no personal data of subject {subject!r} was ever sealed here (no key and no "
            "erasure); check the id: a chat sender's is its sender_id, an account's its "
            "account id.",
        )
    erased = Erased(
        subject=subject,
        erased_at=erasure.erased_at,
        by=erasure.by,
        keys_destroyed=erasure.keys_destroyed,
        already=erasure.already,
        unreadable_within_s=cache_ttl_s,
    )
    if not erasure.already:
        told = render(erased)
        await log_.record(
            OperatorAction(
                id=str(uuid.uuid4()),
                at=at,
                operator=operator,
                via=via,
                action="erase",
                target=subject,
                submitted={"subject": subject},
                status=told.status,
                result=dict(told.body),
            )
        )
    return erased
