"""Redis adapters: the marker (atomic check-and-mark) and the command memory, coalesced, and the
event bus on Redis Streams; driver errors are translated here, once."""

from __future__ import annotations

from workers.adapters.redis.batch import Lua, RedisBatcher
from workers.adapters.redis.bus import RedisEventBus
from workers.adapters.redis.connect import (
    RedisClient,
    connect_redis,
    describe_redis,
    escaped,
    is_cluster,
)
from workers.adapters.redis.marker import SCRIPTS, RedisCommandMemory, RedisKeys, RedisMarker
from workers.adapters.redis.marks import RedisMarks

__all__ = [
    "SCRIPTS",
    "Lua",
    "RedisBatcher",
    "RedisClient",
    "RedisCommandMemory",
    "RedisEventBus",
    "RedisKeys",
    "RedisMarker",
    "RedisMarks",
    "connect_redis",
    "describe_redis",
    "escaped",
    "is_cluster",
]
