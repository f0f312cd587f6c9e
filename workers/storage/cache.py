"""The read-through document cache (TTL) and the change-stream watcher that keeps it correct.

Correctness across processes comes from the change stream: every change to the
collection, from any process, drops the cached entry. A read that started before an
invalidation never stores what it read (``token``), so a late reader cannot put back a
stale document. Where the deployment has no change streams, entries live out their TTL:
another process's change may then be read stale for up to ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from workers.storage.documents import Document

log = logging.getLogger(__name__)

WatchState = Literal["off", "watching", "unsupported"]
_CLEARING_OPERATIONS = frozenset(("drop", "dropDatabase", "rename", "invalidate"))


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one storage's cache, and whether a change stream keeps it correct."""

    hits: int
    misses: int
    invalidations: int
    entries: int
    watch: WatchState
    stream_resumes: int
    """Times the change stream was resumed where it stopped (idle timeouts, network errors)."""


class DocumentCache:
    """Copies of documents by id, each kept at most ``ttl_s`` seconds, least recently used out."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Document]] = OrderedDict()
        self._sequence = 0
        self._invalidated: dict[str, int] = {}
        self._floor = 0  # keys not in _invalidated count as invalidated at _floor
        self.hits = self.misses = self.invalidations = 0

    def token(self) -> int:
        """Take before reading the store; ``put`` refuses the read if an invalidation came since."""
        return self._sequence

    def get(self, key: str) -> Document | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            self._entries.pop(key, None)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return copy.deepcopy(entry[1])

    def put(self, key: str, doc: Document, token: int) -> bool:
        if self._invalidated.get(key, self._floor) > token:
            return False
        self._entries[key] = (self._clock() + self._ttl_s, copy.deepcopy(doc))
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return True

    def invalidate(self, key: str) -> None:
        self._sequence += 1
        self.invalidations += 1
        self._entries.pop(key, None)
        self._invalidated[key] = self._sequence
        if len(self._invalidated) > self._max_entries:
            self._forget_invalidations()

    def clear(self) -> None:
        self._sequence += 1
        self._entries.clear()
        self._forget_invalidations()

    def __len__(self) -> int:
        return len(self._entries)

    def _forget_invalidations(self) -> None:
        # Bounded memory: forget which keys were invalidated, and treat every key as if it was.
        self._floor = self._sequence
        self._invalidated.clear()


class ChangeWatcher:
    """Watches one collection's change stream and drops the cache entries of changed documents."""

    def __init__(self, collection: AsyncCollection[Document], cache: DocumentCache) -> None:
        self._collection = collection
        self._cache = cache
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.state: WatchState = "off"
        self.resumes = 0

    async def ensure(self) -> bool:
        """Start watching if not yet; True if caching is safe now (watching, or TTL only)."""
        if self.state != "off":
            return True
        async with self._lock:
            if self.state == "off" and (self._task is None or self._task.done()):
                ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._task = asyncio.create_task(self._run(ready))
                await asyncio.shield(ready)
        return self.state != "off"

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.state = "off"
        self._cache.clear()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        token: Mapping[str, Any] | None = None
        try:
            while True:
                token = await self._follow(ready, token)
        except OperationFailure as e:
            if ready.done():
                log.warning("change stream of %s failed: %s", self._collection.name, e)
            else:
                log.info(
                    "%s has no change streams (%s); cached documents live out their TTL",
                    self._collection.name,
                    e,
                )
                self.state = "unsupported"
        except PyMongoError as e:
            log.warning("change stream of %s stopped: %s", self._collection.name, e)
        finally:
            if self.state == "watching":
                self.state = "off"  # the next read starts a new stream
                self._cache.clear()
            if not ready.done():
                ready.set_result(None)

    async def _follow(
        self, ready: asyncio.Future[None], token: Mapping[str, Any] | None
    ) -> Mapping[str, Any] | None:
        """Apply changes until the stream ends; return where to resume it (None: from now)."""
        async with await self._collection.watch(resume_after=token) as stream:
            if token is None:
                self._cache.clear()  # what was cached before this stream opened may be stale
            self.state = "watching"
            if not ready.done():
                ready.set_result(None)
            try:
                async for change in stream:
                    self._apply(change)
            except PyMongoError as e:
                # An idle stream runs into the client's timeoutMS (CSOT): resume, miss nothing.
                if e.timeout and stream.resume_token is not None:
                    self.resumes += 1
                    return stream.resume_token
                raise
        return None  # invalidated (drop, rename): the cache was cleared; start afresh

    def _apply(self, change: dict[str, Any]) -> None:
        key = (change.get("documentKey") or {}).get("_id")
        if change.get("operationType") in _CLEARING_OPERATIONS or not isinstance(key, str):
            self._cache.clear()
        else:
            self._cache.invalidate(key)
