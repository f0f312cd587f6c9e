"""Ticket records on the marker's Redis, bounded per principal and in all.

Keys share one hash tag (``{tickets}``), so each script's keys are in one Cluster slot:
``<prefix>{tickets}:<digest>`` the record, ``…:spent:<digest>`` its spent mark (``SET NX``), and
two sorted sets of the digests held, scored by when each record leaves: ``…:held`` (the
fleet's) and ``…:held:<principal digest>`` (one principal's). A put trims both of what has left,
then refuses when either is full (``TicketLimits``), else keeps the record and notes it in both:
one atomic script. The digest (SHA-256 of the ticket) is what Redis holds, never the ticket, so a
key listing or a ``MONITOR`` shows nothing that opens a connection.
"""

from __future__ import annotations

import hashlib
import logging

from redis.exceptions import RedisError

from topics.errors import MarkerUnavailable
from workers.adapters.redis.connect import RedisClient
from workers.adapters.redis.replies import Reply, array, integer, text
from workers.ports import TicketLimits
from workers.secrets import redact

log = logging.getLogger(__name__)
_UNAVAILABLE = (RedisError, OSError, TimeoutError)

# KEYS[1] the record, KEYS[2] the fleet's held set, KEYS[3] the principal's (absent: none).
# ARGV: digest, record, keep ms, per principal, most held. Answers {'ok', 0} or {limit, ms}.
PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = tonumber(ARGV[3])
local function full(key, most)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) < most then return nil end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) - now)
end
if KEYS[3] then
  local wait = full(KEYS[3], tonumber(ARGV[4]))
  if wait then return {'principal', wait} end
end
local wait = full(KEYS[2], tonumber(ARGV[5]))
if wait then return {'fleet', wait} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', keep)
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now + keep, ARGV[1])
  if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
end
return {'ok', 0}
"""

# KEYS[1] the record, KEYS[2] its spent mark; ARGV[1] how long the mark is kept (ms).
SPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX') then return 1 end
return 0
"""


class RedisTicketStore:
    """``TicketStore`` on one Redis (a single server, a Sentinel master or a Cluster)."""

    def __init__(
        self, redis: RedisClient, *, prefix: str, limits: TicketLimits | None = None
    ) -> None:
        self._redis = redis
        self._tag = f"{prefix}{{tickets}}:"
        self._limits = limits or TicketLimits()
        self._put = redis.register_script(PUT)
        self._spend = redis.register_script(SPEND)

    async def put(
        self, digest: str, record: bytes, *, keep_s: int, principal: str | None = None
    ) -> None:
        keys = [self._tag + digest, self._tag + "held"]
        if principal is not None:
            keys.append(self._tag + "held:" + hashlib.sha256(principal.encode()).hexdigest()[:32])
        limits = self._limits
        args = (digest, record, keep_s * 1000, limits.per_principal, limits.max_held)
        try:
            answer = array(await self._put(keys=keys, args=args))
        except _UNAVAILABLE as e:
            raise _unavailable("keeping a ticket", e) from e
        limit, wait_ms = text(answer[0]), integer(answer[1])
        if limit != "ok":
            raise self._limits.refusal(limit, wait_ms)

    async def find(self, digest: str) -> bytes | None:
        try:
            found = await self._redis.get(self._tag + digest)
        except _UNAVAILABLE as e:
            raise _unavailable("reading a ticket", e) from e
        if found is None:
            return None
        return found.encode() if isinstance(found, str) else bytes(found)

    async def spend(self, digest: str, *, keep_s: int) -> bool:
        keys = [self._tag + digest, self._tag + "spent:" + digest]
        try:
            taken: Reply = await self._spend(keys=keys, args=(keep_s * 1000,))
        except _UNAVAILABLE as e:
            raise _unavailable("spending a ticket", e) from e
        return integer(taken) == 1


def _unavailable(what: str, e: BaseException) -> MarkerUnavailable:
    log.info("Redis failed while %s: %s", what, redact(repr(e)))
    return MarkerUnavailable(f"Redis did not answer while {what}; retry in a moment.")
