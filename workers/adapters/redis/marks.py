"""The marker and the command memory of a process on one Redis, over one coalescing batcher."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Histogram

from workers.adapters.redis.batch import RedisBatcher
from workers.adapters.redis.connect import connect_redis, is_cluster
from workers.adapters.redis.marker import SCRIPTS, RedisCommandMemory, RedisMarker
from workers.adapters.redis.tickets import RedisTicketStore

log = logging.getLogger(__name__)


class RedisMarks:
    """``marker``, ``memory`` and ``tickets`` under one key prefix; connections open on first
    use."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_ms: int,
        marker_ttl_s: int,
        command_ttl_s: int,
        claim_ttl_ms: int,
        latency: Histogram,
    ) -> None:
        self._redis = connect_redis(url, timeout_ms=timeout_ms)
        self._batcher = RedisBatcher(
            self._redis, scripts=SCRIPTS, timeout_ms=timeout_ms, latency=latency
        )
        self.memory = RedisCommandMemory(
            self._batcher, prefix=prefix, ttl_s=command_ttl_s, claim_ttl_ms=claim_ttl_ms
        )
        self.marker = RedisMarker(
            self._batcher,
            prefix=prefix,
            ttl_s=marker_ttl_s,
            claim_ttl_ms=claim_ttl_ms,
            cluster=is_cluster(self._redis),  # the filter key is in another slot
        )
        self.tickets = RedisTicketStore(self._redis, prefix=prefix)

    async def close(self) -> None:
        """Send what the batcher still holds, then close the connections (bounded)."""
        await self._batcher.drain()
        try:
            async with asyncio.timeout(2):
                await self._redis.aclose()
        except (TimeoutError, OSError) as e:
            log.warning("redis close: %r", e)
