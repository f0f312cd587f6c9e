"""Write budgets on Redis: one token bucket per principal, taken in one Lua script on Redis's clock.

A bucket is one key, ``<prefix>budget:<principal>`` holding ``<tokens>|<ms>``, that expires once
it would be full again (a missing bucket is a full one): an idle principal costs nothing. The
script is ``workers.ports.take_token`` in Lua. ``TAKE_TOKEN`` is also the head of the marker's
claim-and-mark script, which takes the write in the same call as the mark
(``workers.adapters.redis.marker``).
"""

from __future__ import annotations

import hashlib

from workers.adapters.redis.batch import RedisBatcher
from workers.adapters.redis.replies import Lua, integer
from workers.ports import BudgetDraw

TAKE_TOKEN = """
local function take_token(key, spec, writes)
  local rate, burst = string.match(spec, '^(%d+)/(%d+)$')
  rate, burst = tonumber(rate), tonumber(burst)
  writes = tonumber(writes) or 1
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local tokens = burst
  local held = redis.call('GET', key)
  if held then
    local left, at = string.match(held, '^([^|]*)|(.*)$')
    left, at = tonumber(left), tonumber(at)
    if now < at then now = at end
    tokens = math.min(burst, left + (now - at) * rate / 1000)
  end
  if tokens < writes then return math.max(1, math.ceil((writes - tokens) * 1000 / rate)) end
  tokens = tokens - writes
  local full_ms = math.ceil((burst - tokens) * 1000 / rate)
  redis.call('SET', key, string.format('%.6f|%.0f', tokens, now), 'PX', full_ms + 1000)
  return 0
end
"""
"""A Lua function: 0 when the writes (one unless told) were taken, else the milliseconds until
they are there."""

TAKE = Lua(TAKE_TOKEN + "return take_token(KEYS[1], ARGV[1], ARGV[2])")

MAX_PRINCIPAL_CHARS = 200
"""A longer principal is keyed by its digest (a JWT ``sub`` is short; nothing else is keyed)."""


def budget_key(prefix: str, principal: str) -> str:
    if len(principal) > MAX_PRINCIPAL_CHARS:
        principal = "#" + hashlib.sha256(principal.encode()).hexdigest()
    return f"{prefix}budget:{principal}"


class RedisWriteBudgets:
    """``WriteBudgets`` over the marker's batcher: a take rides with the round trip of the
    moment (one script call per write, coalesced with every other call of that tick)."""

    def __init__(self, batcher: RedisBatcher, *, prefix: str) -> None:
        self._batcher = batcher
        self._prefix = prefix

    async def take(self, draw: BudgetDraw) -> int:
        key = budget_key(self._prefix, draw.principal)
        return integer(await self._batcher.call(TAKE, (key,), (draw.budget.spec, str(draw.writes))))

    async def ping(self) -> bool:
        return await self._batcher.ping()
