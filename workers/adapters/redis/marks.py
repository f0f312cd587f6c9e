"""The marker, the command memory and the write budgets of a process on one Redis, over one
coalescing batcher; the tickets beside them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from prometheus_client import Histogram

from workers.adapters.redis.batch import RedisBatcher
from workers.adapters.redis.budgets import RedisWriteBudgets
from workers.adapters.redis.connect import connect_redis, is_cluster
from workers.adapters.redis.marker import SCRIPTS, RedisCommandMemory, RedisMarker
from workers.adapters.redis.tickets import RedisTicketStore
from workers.ports import TicketLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MarkTtls:
    """How long marks, command records and command claims live."""

    marker_s: int
    command_s: int
    claim_ms: int


class RedisMarks:
    """``marker``, ``memory``, ``budgets`` and ``tickets`` under one key prefix; connections
    open on first use."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_ms: int,
        ttls: MarkTtls,
        tickets: TicketLimits,
        latency: Histogram,
    ) -> None:
        self._redis = connect_redis(url, timeout_ms=timeout_ms)
        self._batcher = RedisBatcher(
            self._redis, scripts=SCRIPTS, timeout_ms=timeout_ms, latency=latency
        )
        self.memory = RedisCommandMemory(
            self._batcher, prefix=prefix, ttl_s=ttls.command_s, claim_ttl_ms=ttls.claim_ms
        )
        self.marker = RedisMarker(
            self._batcher,
            prefix=prefix,
            ttl_s=ttls.marker_s,
            claim_ttl_ms=ttls.claim_ms,
            cluster=is_cluster(self._redis),  # the filter and budget keys are in other slots
        )
        self.budgets = RedisWriteBudgets(self._batcher, prefix=prefix)
        self.tickets = RedisTicketStore(self._redis, prefix=prefix, limits=tickets)

    async def close(self) -> None:
        """Send what the batcher still holds, then close the connections (bounded)."""
        await self._batcher.drain()
        try:
            async with asyncio.timeout(2):
                await self._redis.aclose()
        except (TimeoutError, OSError) as e:
            log.warning("redis close: %r", e)
