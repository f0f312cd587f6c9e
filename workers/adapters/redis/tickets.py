"""Ticket records on the marker's Redis: one key per ticket, one per spent mark (``SET NX``).

Keys are ``<prefix>ticket:<digest>`` and ``<prefix>ticket-spent:<digest>``, each with its own
expiry; the digest (SHA-256 of the ticket) is what Redis holds, never the ticket, so a key
listing or a ``MONITOR`` shows nothing that opens a connection.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from topics.errors import MarkerUnavailable
from workers.adapters.redis.connect import RedisClient
from workers.secrets import redact

log = logging.getLogger(__name__)
_UNAVAILABLE = (RedisError, OSError, TimeoutError)


class RedisTicketStore:
    """``TicketStore`` on one Redis (a single server, a Sentinel master or a Cluster)."""

    def __init__(self, redis: RedisClient, *, prefix: str) -> None:
        self._redis = redis
        self._records = f"{prefix}ticket:"
        self._spent = f"{prefix}ticket-spent:"

    async def put(self, digest: str, record: bytes, *, keep_s: int) -> None:
        try:
            await self._redis.set(self._records + digest, record, ex=keep_s)
        except _UNAVAILABLE as e:
            raise _unavailable("keeping a ticket", e) from e

    async def find(self, digest: str) -> bytes | None:
        try:
            found = await self._redis.get(self._records + digest)
        except _UNAVAILABLE as e:
            raise _unavailable("reading a ticket", e) from e
        if found is None:
            return None
        return found.encode() if isinstance(found, str) else bytes(found)

    async def spend(self, digest: str, *, keep_s: int) -> bool:
        try:
            taken = await self._redis.set(self._spent + digest, b"1", ex=keep_s, nx=True)
        except _UNAVAILABLE as e:
            raise _unavailable("spending a ticket", e) from e
        return bool(taken)


def _unavailable(what: str, e: BaseException) -> MarkerUnavailable:
    log.info("Redis failed while %s: %s", what, redact(repr(e)))
    return MarkerUnavailable(f"Redis did not answer while {what}; retry in a moment.")
