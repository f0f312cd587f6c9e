"""The Redis adapter: the marker (atomic check-and-mark) and the command memory, coalesced."""

from __future__ import annotations

from workers.adapters.redis.batch import Lua, RedisBatcher
from workers.adapters.redis.connect import RedisClient, connect_redis, describe_redis
from workers.adapters.redis.marker import SCRIPTS, RedisCommandMemory, RedisKeys, RedisMarker

__all__ = [
    "SCRIPTS",
    "Lua",
    "RedisBatcher",
    "RedisClient",
    "RedisCommandMemory",
    "RedisKeys",
    "RedisMarker",
    "connect_redis",
    "describe_redis",
]
