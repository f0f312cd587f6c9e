"""The Redis marker and command memory: Lua scripts over keys that share a hash slot per aggregate.

A mark is ``<event type>|<event id>|<id it was validated after>``. It is written tentative
(a bounded TTL) by the check-and-mark script and made durable by ``confirm_stored`` once the
store holds the event (the appender calls it), so a mark whose event never reached the store
expires within the bound. Command
records are ``pending|<event id>``, ``unknown|<event id>`` or the JSON of the first answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from topics.envelope import NEW_AGGREGATE
from topics.errors import MarkerUnavailable
from workers.adapters.redis.batch import Lua, RedisBatcher, text
from workers.ports import UNKNOWN, CommandRecord, Head, MarkRequest, MarkResult

CHECK_AND_MARK = Lua("""
local mark = redis.call('GET', KEYS[1])
local current, after
local n = tonumber(ARGV[5])
if mark then
  local t, id, a = string.match(mark, '^([^|]*)|([^|]*)|?(.*)$')
  if id == ARGV[2] then return {'mine', a, t, mark} end
  current, after = t, id
elseif ARGV[4] == '?' then
  local fresh = false
  if n > 0 and redis.call('GETBIT', KEYS[2], 0) == 1 then
    for i = 6, 5 + n do
      if redis.call('GETBIT', KEYS[2], ARGV[i]) == 0 then fresh = true break end
    end
  end
  if not fresh then return {'missing', '', '', ''} end
  current, after = 'none', '-'
elseif ARGV[4] == '-' then
  current, after = 'none', '-'
else
  current, after = string.match(ARGV[4], '^([^|]*)|(.*)$')
end
for i = 6 + n, #ARGV do
  if ARGV[i] == current or ARGV[i] == '*' then
    redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2] .. '|' .. after, 'PX', ARGV[3])
    return {'marked', after, current, mark or ''}
  end
end
return {'rejected', after, current, mark or ''}
""")

CONFIRM = Lua("""
local mark = redis.call('GET', KEYS[1])
if mark and string.match(mark, '^[^|]*|([^|]*)') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
""")

CONFIRM_MANY = Lua("""
for i = 1, #KEYS do
  local mark = redis.call('GET', KEYS[i])
  if mark and string.match(mark, '^[^|]*|([^|]*)') == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
return 1
""")

RESTORE = Lua("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1])
  else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
end
return 1
""")

REPAIR = Lua("""
local mark = redis.call('GET', KEYS[1])
if mark and string.match(mark, '^[^|]*|([^|]*)') == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1])
  else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
end
return 1
""")

CLAIM = Lua("""
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 8) ~= 'unknown|' then return v end
redis.call('SET', KEYS[1], 'pending|' .. ARGV[1], 'PX', ARGV[2])
return v or false
""")

MARK_UNKNOWN = Lua("""
if redis.call('GET', KEYS[1]) == 'pending|' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'unknown|' .. ARGV[1], 'PX', ARGV[2])
end
return 1
""")

RELEASE = Lua("""
if redis.call('GET', KEYS[1]) == 'pending|' .. ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
""")

FILTER_BITS = 1 << 27
"""Bits of the new-aggregate filter (16 MiB): about 1% false positives at 14 million aggregates."""
FILTER_HASHES = 5


def filter_positions(aggregate_key: str, bits: int = FILTER_BITS) -> list[int]:
    """The filter's bit positions of one aggregate (bit 0 is the filter's own 'ready' flag)."""
    digest = hashlib.blake2b(aggregate_key.encode(), digest_size=4 * FILTER_HASHES).digest()
    return [
        1 + int.from_bytes(digest[4 * i : 4 * i + 4], "big") % (bits - 1)
        for i in range(FILTER_HASHES)
    ]


SCRIPTS = (CHECK_AND_MARK, CONFIRM, CONFIRM_MANY, RESTORE, REPAIR, CLAIM, MARK_UNKNOWN, RELEASE)


class RedisKeys:
    """Key names; the hash tag keeps every key of one aggregate in one cluster slot."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def mark(self, aggregate_key: str) -> str:
        return f"{self.prefix}mark:{{{aggregate_key}}}"

    def command(self, aggregate_key: str, command_id: str) -> str:
        return f"{self.prefix}cmd:{{{aggregate_key}}}:{command_id}"

    def seen(self) -> str:
        """The new-aggregate filter: a Bloom bitmap of every aggregate the store holds."""
        return f"{self.prefix}seen"


class RedisMarker:
    """The marker port over Redis: atomic check-and-mark, confirm, restore and repair."""

    def __init__(
        self,
        batcher: RedisBatcher,
        *,
        prefix: str = "eventfleet:",
        ttl_s: int = 86_400,
        tentative_ttl_ms: int = 15_000,
        cluster: bool = False,
    ) -> None:
        self._batcher = batcher
        self._keys = RedisKeys(prefix)
        self._ttl_ms = str(ttl_s * 1000)
        self._tentative_ms = str(tentative_ttl_ms)
        # In a cluster the filter lives in another slot than a mark: ask it in its own call.
        self._cluster = cluster

    async def check_and_mark(self, request: MarkRequest) -> MarkResult:
        """One script: the mark, or (mark missing) the new-aggregate filter, then the check."""
        fallback = request.fallback
        keys: tuple[str, ...] = (self._keys.mark(request.aggregate_key),)
        positions: list[int] = []
        if fallback == UNKNOWN:
            if self._cluster:
                if await self._certainly_new(request.aggregate_key):
                    fallback = NEW_AGGREGATE
            else:
                positions = filter_positions(request.aggregate_key)
                keys = (keys[0], self._keys.seen())
        args = (
            request.event_type,
            request.event_id,
            self._tentative_ms,
            fallback,
            str(len(positions)),
            *(str(p) for p in positions),
            *request.allowed,
        )
        status, after, current, previous = await self._batcher.call(CHECK_AND_MARK, keys, args)
        current = text(current)
        return MarkResult(
            status=text(status),
            after=text(after) or NEW_AGGREGATE,
            current=None if current in ("none", "") else current,
            previous=text(previous),
        )

    async def confirm_stored(self, stored: Sequence[tuple[str, str]]) -> None:
        """Rides with the next round trip, unawaited: a lost confirm lets the mark expire.

        One script for the whole batch; in a cluster (keys in many slots) one per mark.
        """
        if not stored:
            return
        if self._cluster:
            for aggregate_key, event_id in stored:
                key = self._keys.mark(aggregate_key)
                self._batcher.submit(CONFIRM, (key,), (event_id, self._ttl_ms))
            return
        keys = tuple(self._keys.mark(aggregate_key) for aggregate_key, _ in stored)
        self._batcher.submit(CONFIRM_MANY, keys, (self._ttl_ms, *(i for _, i in stored)))

    async def restore(self, request: MarkRequest, marked: MarkResult) -> None:
        ours = f"{request.event_type}|{request.event_id}|{marked.after}"
        key = self._keys.mark(request.aggregate_key)
        # The previous mark comes back tentative: it may name an event still in flight.
        await self._batcher.call(RESTORE, (key,), (ours, marked.previous, self._tentative_ms))

    async def repair(self, aggregate_key: str, rejected_id: str, head: Head | None) -> None:
        """Rides with the next round trip, unawaited: the appender never waits for Redis."""
        value = f"{head.type}|{head.event_id}|" if head is not None else ""
        key = self._keys.mark(aggregate_key)
        self._batcher.submit(REPAIR, (key,), (rejected_id, value, self._ttl_ms))

    async def _certainly_new(self, aggregate_key: str) -> bool:
        ops: list[str] = ["GET", "u1", "0"]
        for position in filter_positions(aggregate_key):
            ops += ["GET", "u1", str(position)]
        bits = await self._batcher.call("BITFIELD", (self._keys.seen(),), tuple(ops))
        return bool(bits[0]) and not all(bits[1:])

    async def note_aggregates(self, aggregate_keys: Sequence[str]) -> None:
        """Rides with the next round trip, unawaited: a missed bit costs one store read."""
        ops: list[str] = []
        for aggregate_key in aggregate_keys:
            for position in filter_positions(aggregate_key):
                ops += ["SET", "u1", str(position), "1"]
        if ops:  # one command for the batch: every bit is in the same key
            self._batcher.submit("BITFIELD", (self._keys.seen(),), tuple(ops))

    async def filter_ready(self) -> bool:
        bit = await self._batcher.call("GETBIT", (self._keys.seen(), "0"), ())
        return bool(bit)

    async def mark_filter_ready(self) -> None:
        await self._batcher.call("SETBIT", (self._keys.seen(), "0", "1"), ())

    async def peek(self, aggregate_key: str) -> tuple[str, str] | None:
        """The mark's (event type, event id), read only; None when there is none."""
        raw = await self._batcher.call("GET", (self._keys.mark(aggregate_key),), ())
        if raw is None:
            return None
        event_type, _, rest = text(raw).partition("|")
        return event_type, rest.partition("|")[0]

    async def ping(self) -> bool:
        try:
            return bool(await self._batcher.call("PING", (), ()))
        except MarkerUnavailable:
            return False

    async def drain(self) -> None:
        await self._batcher.drain()


class RedisCommandMemory:
    """The command-memory port over Redis: claims with a short bound, answers for the TTL."""

    def __init__(
        self,
        batcher: RedisBatcher,
        *,
        prefix: str = "eventfleet:",
        ttl_s: int = 86_400,
        claim_ttl_ms: int = 15_000,
    ) -> None:
        self._batcher = batcher
        self._keys = RedisKeys(prefix)
        self._ttl_ms = str(ttl_s * 1000)
        self._claim_ms = str(claim_ttl_ms)

    async def claim(
        self, aggregate_key: str, command_id: str, event_id: str
    ) -> CommandRecord | None:
        key = self._keys.command(aggregate_key, command_id)
        found = await self._batcher.call(CLAIM, (key,), (event_id, self._claim_ms))
        return None if found is None else _record(found)

    async def recall(self, aggregate_key: str, command_id: str) -> CommandRecord | None:
        found = await self._batcher.call("GET", (self._keys.command(aggregate_key, command_id),), ())
        return None if found is None else _record(found)

    async def settle(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        """Rides with the next round trip, unawaited: a lost answer only makes a retry run
        again, which the derived event id makes safe."""
        key = self._keys.command(aggregate_key, command_id)
        self._batcher.submit("SET", (key,), (answer, "PX", self._ttl_ms))

    async def unknown(self, aggregate_key: str, command_id: str, event_id: str) -> None:
        key = self._keys.command(aggregate_key, command_id)
        await self._batcher.call(MARK_UNKNOWN, (key,), (event_id, self._ttl_ms))

    async def release(self, aggregate_key: str, command_id: str, event_id: str) -> None:
        key = self._keys.command(aggregate_key, command_id)
        await self._batcher.call(RELEASE, (key,), (event_id,))


def _record(raw: bytes | str) -> CommandRecord:
    value = raw if isinstance(raw, bytes) else raw.encode()
    for state in (b"pending", b"unknown"):
        if value.startswith(state + b"|"):
            return CommandRecord(state.decode(), value[len(state) + 1 :].decode())
    return CommandRecord("answered", answer=value)
