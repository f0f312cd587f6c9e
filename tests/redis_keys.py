"""No test leaves keys in the machine's shared Redis: every name a test hands out as a key
prefix is claimed here, and its keys are unlinked when the session ends.

A fleet keeps its new-aggregate filter (``<prefix>:seen``, a 16 MB bitmap) with no TTL, as it
should in production: one full run of the suite used to leave about 600 MB behind, and five runs
3.6 GB. Keys go at the session's end, not the test's, because a test may start a second process
on the same prefix to find what the first one left.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
import redis

from workers.devtools.embedded import SYSTEM_REDIS_URL

_CLAIMED: set[str] = set()
_BATCH = 1000


def claim(prefix: str) -> str:
    """Remember ``prefix`` for the session's clean-up; returns it."""
    if not prefix or any(c in prefix for c in "*?[]\\"):
        raise ValueError(f"a key prefix must be non-empty plain text, not {prefix!r}")
    _CLAIMED.add(prefix)
    return prefix


def unlink_prefixes(client: redis.Redis, prefixes: Iterable[str]) -> int:
    """Unlink every key that starts with one of ``prefixes``; returns how many went."""
    gone = 0
    for prefix in prefixes:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=_BATCH):
            batch.append(key)
            if len(batch) == _BATCH:
                gone += client.unlink(*batch)
                batch.clear()
        if batch:
            gone += client.unlink(*batch)
    return gone


@pytest.fixture(scope="session", autouse=True)
def no_keys_outlive_the_session() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(SYSTEM_REDIS_URL, socket_timeout=30)
    try:
        client.ping()
    except redis.ConnectionError:
        return  # no system Redis: the stack's own redis-server stopped with the session, keys and all
    try:
        unlink_prefixes(client, sorted(_CLAIMED))
    finally:
        client.close()
