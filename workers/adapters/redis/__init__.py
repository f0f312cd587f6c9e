"""The Redis adapter: the marker (atomic check-and-mark) and the command answers."""

from __future__ import annotations

from workers.adapters.redis.marker import (
    CHECK_AND_MARK,
    NO_EVENTS,
    RESTORE,
    UNKNOWN,
    Lua,
    RedisMarker,
)

__all__ = [
    "CHECK_AND_MARK",
    "NO_EVENTS",
    "RESTORE",
    "UNKNOWN",
    "Lua",
    "RedisMarker",
]
