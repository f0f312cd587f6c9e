"""Redis adapters: the marker (atomic check-and-mark), the command memory and the write budgets,
coalesced, the single-use tickets, and the event bus on Redis Streams; driver errors are
translated here, once."""

from __future__ import annotations

from workers.adapters.redis.batch import RedisBatcher
from workers.adapters.redis.budgets import RedisWriteBudgets
from workers.adapters.redis.bus import RedisEventBus
from workers.adapters.redis.connect import (
    connect_redis,
    describe_redis,
    escaped,
)
from workers.adapters.redis.live import RedisLiveFeed
from workers.adapters.redis.marker import SCRIPTS, RedisCommandMemory, RedisMarker
from workers.adapters.redis.marks import MarkTtls, RedisMarks
from workers.adapters.redis.tickets import RedisTicketStore

__all__ = [
    "SCRIPTS",
    "MarkTtls",
    "RedisBatcher",
    "RedisCommandMemory",
    "RedisEventBus",
    "RedisLiveFeed",
    "RedisMarker",
    "RedisMarks",
    "RedisTicketStore",
    "RedisWriteBudgets",
    "connect_redis",
    "describe_redis",
    "escaped",
]
