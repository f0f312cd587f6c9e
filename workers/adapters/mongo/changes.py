"""A collection's change stream, followed to keep a document cache correct across processes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from topics.jsonvalue import Json, JsonObject
from workers.storage.ports import Document, Invalidations, WatchState

log = logging.getLogger(__name__)

_CLEARING_OPERATIONS = frozenset(("drop", "dropDatabase", "rename", "invalidate"))


class ChangeWatcher:
    """``ChangeFeed`` on one collection's change stream: drops the cache entries of changed
    documents."""

    def __init__(self, collection: AsyncCollection[Document], cache: Invalidations) -> None:
        self._collection = collection
        self._cache = cache
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.state: WatchState = "off"
        self.resumes = 0

    async def ensure(self) -> bool:
        """Start watching if not yet; True if caching is safe now (watching, or TTL only)."""
        if self.state != "off":
            return True
        async with self._lock:
            if self.state == "off" and (self._task is None or self._task.done()):
                self._closing = False
                ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._task = asyncio.create_task(self._run(ready))
                await asyncio.shield(ready)
        return self.state != "off"

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        # PyMongo can take a cancel that lands in a getMore for a network error and resume the
        # stream, blocking again: cancel until the task is gone (the flag ends its resume loop).
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        self.state = "off"
        self._cache.clear()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        token: Mapping[str, Json] | None = None
        try:
            while not self._closing:
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
        self, ready: asyncio.Future[None], token: Mapping[str, Json] | None
    ) -> Mapping[str, Json] | None:
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
                if e.timeout and stream.resume_token is not None and not self._closing:
                    self.resumes += 1
                    return stream.resume_token
                raise
        return None  # invalidated (drop, rename): the cache was cleared; start afresh

    def _apply(self, change: JsonObject) -> None:
        key = (change.get("documentKey") or {}).get("_id")
        if change.get("operationType") in _CLEARING_OPERATIONS or not isinstance(key, str):
            self._cache.clear()
        else:
            self._cache.invalidate(key)
