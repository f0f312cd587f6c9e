"""The read-through document cache (TTL), kept correct by the document store's change feed.

Correctness across processes comes from the change feed (``DocumentStore.watch``): every
change to the collection, from any process, drops the cached entry. A read that started
before an invalidation never stores what it read (``token``), so a late reader cannot put
back a stale document. Where the deployment has no change feed, entries live out their TTL:
another process's change may then be read stale for up to ``ttl_s``.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from topics.errors import InvalidInput
from workers.storage.ports import Document, WatchState


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """A storage's read-through cache: each document kept at most ``ttl_s`` seconds, and at most
    ``max_entries`` documents (the least recently used go first).

    ``EventSourcedStorage(documents, cache=CachePolicy(ttl_s=60))``; without one (the default)
    every read goes to the document store.
    """

    ttl_s: float
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        ttl_s, max_entries = self.ttl_s, self.max_entries
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or ttl_s <= 0:
            raise InvalidInput(
                f"CachePolicy ttl_s={ttl_s!r}: use a number of seconds > 0, or no cache"
                " (cache=None)."
            )
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise InvalidInput(f"CachePolicy max_entries={max_entries!r}: use an integer >= 1.")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one storage's cache, and whether a change stream keeps it correct."""

    hits: int
    misses: int
    invalidations: int
    entries: int
    watch: WatchState
    stream_resumes: int
    """Times the change feed was resumed where it stopped (idle timeouts, network errors)."""


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
