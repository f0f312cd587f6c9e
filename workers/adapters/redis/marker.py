"""The Redis marker and command memory: Lua scripts over keys that share a hash slot per aggregate.

A mark is ``<event type>|<event id>|<id it was validated after>|<version>``, written by the
check-and-mark script with the marker TTL; the version is the marker's count (the one before,
plus one; empty where it knows none, as in marks written before versions were counted). It is
rolled back only when its event is known not to be stored (``restore`` after a produce Kafka
never took, ``repair`` after the store refused it, or a re-mark over a value the store showed to
be stale). Command records are
``pending|<event id>|<request token>``, ``unknown|<event id>`` or the recorded outcome; an
event sent without an answer is also recorded by its id (``evt:`` keys), so the outcome query
answers "unknown" for it whether or not it had a command id; a command refused at the door
keeps its refusal apart from its claim (``rej:`` keys), so a retry is judged again. Command
ids arrive scoped by their sender (``topics.envelope.command_scope``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

from snapshot_rules.declaration import ANY, NEW
from topics.envelope import NEW_AGGREGATE
from workers.adapters.redis.batch import RedisBatcher
from workers.adapters.redis.budgets import TAKE, TAKE_TOKEN, budget_key
from workers.adapters.redis.replies import Lua, Reply, array, data, integer, text
from workers.ports import UNKNOWN, BudgetDraw, CommandRecord, Head, MarkRequest, MarkResult

# The budget's take (its key last, when ARGV[10] names a budget), the claim (KEYS[2] when
# there is one) and the mark are one atomic step: one round trip per command; a write over
# its budget changes nothing else, and no request is ever marked for a command another
# request holds. The filter's key comes next to last, or last, when ARGV[5] (its positions) is
# above 0; what a call has is read from the keys, not sent as flags. ARGV[9] is the expected
# version ('' for none), checked before the type against the version the mark counts
# (``known``; '' when it counts none): compared as the decimal text both sides write, never as
# a Lua number. The filter's positions are ARGV[11..10+n], the allowed types after them.
CLAIM_AND_MARK = Lua(
    TAKE_TOKEN
    + """
local n = tonumber(ARGV[5])
local has_seen = n > 0
local has_budget = ARGV[10] ~= ''
if has_budget then
  local wait = take_token(KEYS[#KEYS], ARGV[10])
  if wait > 0 then return {'over_budget', tostring(wait), '', '', '', '0', ''} end
end
local extra = (has_seen and 1 or 0) + (has_budget and 1 or 0)
local has_cmd = #KEYS == 2 + extra
local seen = has_seen and KEYS[#KEYS - (has_budget and 1 or 0)] or nil
local takeover = '0'
if has_cmd then
  local v = redis.call('GET', KEYS[2])
  local mine = 'pending|' .. ARGV[2] .. '|' .. ARGV[7]
  if v and v ~= mine then
    if string.sub(v, 1, 8) == 'pending|' then return {'busy', '', '', '', v, '0', ''} end
    if string.sub(v, 1, 8) ~= 'unknown|' then return {'answered', '', '', '', v, '0', ''} end
    takeover = '1'
  end
  if v ~= mine then redis.call('SET', KEYS[2], mine, 'PX', ARGV[6]) end
end
local raw = redis.call('GET', KEYS[1])
local mark, previous = raw, raw or ''
if raw and ARGV[8] ~= '' and raw == ARGV[8] then mark, previous = false, '' end
local current, after, known
if mark then
  local t, id, a, v = string.match(mark, '^([^|]*)|([^|]*)|?([^|]*)|?([^|]*)')
  if id == ARGV[2] then return {'mine', a, t, mark, '', takeover, ''} end
  current, after, known = t, id, v
elseif ARGV[4] == '?' then
  local fresh = false
  if has_seen and n > 0 and redis.call('GETBIT', seen, 0) == 1 then
    for i = 11, 10 + n do
      if redis.call('GETBIT', seen, ARGV[i]) == 0 then fresh = true break end
    end
  end
  if not fresh then return {'missing', '', '', previous, '', takeover, ''} end
  current, after, known = 'none', '-', '0'
elseif ARGV[4] == '-' then
  current, after, known = 'none', '-', '0'
else
  current, after, known = string.match(ARGV[4], '^([^|]*)|([^|]*)|?(.*)$')
end
if not string.match(known or '', '^%d+$') then known = '' end
if ARGV[9] ~= '' and known ~= '' and known ~= ARGV[9] then
  return {'wrong_version', after, current, previous, '', takeover, known}
end
for i = 11 + n, #ARGV do
  if ARGV[i] == current or ARGV[i] == '*' then
    local version = ''
    if known ~= '' then version = string.format('%d', tonumber(known) + 1) end
    redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2] .. '|' .. after .. '|' .. version,
      'PX', ARGV[3])
    return {'marked', after, current, previous, '', takeover, known}
  end
end
return {'rejected', after, current, previous, '', takeover, known}
"""
)

# Restore and repair: if the mark names event ARGV[1], put ARGV[2] back (none: delete it).
RESTORE = REPAIR = Lua("""
local mark = redis.call('GET', KEYS[1])
if mark and string.match(mark, '^[^|]*|([^|]*)') == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1])
  else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
end
return 1
""")

CLAIM = Lua("""
local v = redis.call('GET', KEYS[1])
local mine = 'pending|' .. ARGV[1] .. '|' .. ARGV[3]
if v == mine then return false end
if v and string.sub(v, 1, 8) ~= 'unknown|' then return v end
redis.call('SET', KEYS[1], mine, 'PX', ARGV[2])
return v or false
""")

MARK_UNKNOWN = Lua("""
local v = redis.call('GET', KEYS[1])
if KEYS[1] ~= KEYS[2] and (not v or string.sub(v, 1, 8) == 'pending|'
    or string.sub(v, 1, 8) == 'unknown|') then
  redis.call('SET', KEYS[1], 'unknown|' .. ARGV[1], 'PX', ARGV[2])
end
redis.call('SET', KEYS[2], 'unknown|' .. ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[2])
return 1
""")

# The record by event id and its age (the TTL it was set with, less what remains): Redis's own
# clock, whichever process asks.
RECALL_AGED = Lua("""
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, tostring(redis.call('PTTL', KEYS[1]))}
""")

# KEYS[1] the event's record, KEYS[2] its command's (absent without one). Replaced only while
# the event's record is still this unknown attempt, old enough, and no retry holds the claim.
RESOLVE = Lua("""
local want = 'unknown|' .. ARGV[1] .. '|' .. ARGV[2]
local ttl, min_age = tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('GET', KEYS[1]) ~= want then return 0 end
if ttl - redis.call('PTTL', KEYS[1]) < min_age then return 0 end
if KEYS[2] then
  local c = redis.call('GET', KEYS[2])
  if c and string.sub(c, 1, 8) == 'pending|' then return 0 end
  if c == 'unknown|' .. ARGV[1] then
    if ARGV[6] == '1' then redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[4])
    else redis.call('DEL', KEYS[2]) end
  end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
""")

RELEASE = Lua("""
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^pending|[^|]*|(.*)$') == ARGV[1] then redis.call('DEL', KEYS[1]) end
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


def may_start(allowed: Sequence[str]) -> bool:
    """Whether an event type allowed after these may be an aggregate's first event."""
    return NEW in allowed or ANY in allowed


SCRIPTS = (
    CLAIM_AND_MARK,
    RESTORE,
    REPAIR,
    CLAIM,
    MARK_UNKNOWN,
    RELEASE,
    RECALL_AGED,
    RESOLVE,
    TAKE,
)


class RedisKeys:
    """Key names; the hash tag keeps every key of one aggregate in one cluster slot."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def mark(self, aggregate_key: str) -> str:
        return f"{self.prefix}mark:{{{aggregate_key}}}"

    def command(self, aggregate_key: str, command_id: str) -> str:
        return f"{self.prefix}cmd:{{{aggregate_key}}}:{command_id}"

    def refusal(self, aggregate_key: str, command_id: str) -> str:
        """A command's last refusal at the door, apart from its claim (same slot)."""
        return f"{self.prefix}rej:{{{aggregate_key}}}:{command_id}"

    def event(self, aggregate_key: str, event_id: str) -> str:
        """An event sent without an answer, by its id (same slot as the aggregate's mark)."""
        return f"{self.prefix}evt:{{{aggregate_key}}}:{event_id}"

    def incarnation(self) -> str:
        """The run id of the Redis server the filter was built on."""
        return f"{self.prefix}seen:run"

    def seen(self) -> str:
        """The new-aggregate filter: a Bloom bitmap of every aggregate the store holds."""
        return f"{self.prefix}seen"


class RedisMarker:
    """The marker port over Redis: atomic claim-and-mark, restore and repair, the filter."""

    def __init__(
        self,
        batcher: RedisBatcher,
        *,
        prefix: str = "eventfleet:",
        ttl_s: int = 86_400,
        claim_ttl_ms: int = 15_000,
        cluster: bool = False,
    ) -> None:
        self._batcher = batcher
        self._keys = RedisKeys(prefix)
        self._ttl_ms = str(ttl_s * 1000)
        self._claim_ms = str(claim_ttl_ms)
        # In a cluster the filter lives in another slot than a mark: ask it in its own call.
        self._cluster = cluster

    async def check_and_mark(self, request: MarkRequest) -> MarkResult:
        """One script: the budget's take, the command's claim, the mark, or (mark missing) the
        filter, the check."""
        fallback = request.fallback
        budget = request.budget
        if budget is not None and self._cluster:  # the bucket is in another slot
            wait_ms = await self._take_apart(budget)
            if wait_ms:
                return MarkResult("over_budget", retry_after_ms=wait_ms)
            budget = None
        keys: list[str] = [self._keys.mark(request.aggregate_key)]
        if request.command_id is not None:
            keys.append(self._keys.command(request.aggregate_key, request.command_id))
        positions: list[int] = []
        # The filter only ever answers "new": worth its hashes (and five Lua arguments) only
        # for a type that may start an aggregate. Another one with no mark asks the store.
        if fallback == UNKNOWN and may_start(request.allowed):
            if self._cluster:
                if await self._certainly_new(request.aggregate_key):
                    fallback = NEW_AGGREGATE
            else:
                positions = filter_positions(request.aggregate_key)
                keys.append(self._keys.seen())
        if budget is not None:
            keys.append(budget_key(self._keys.prefix, budget.principal))
        args = (
            request.event_type,
            request.event_id,
            self._ttl_ms,
            fallback,
            str(len(positions)),
            self._claim_ms,
            request.token,
            request.replace,
            "" if request.expected_version is None else str(request.expected_version),
            "" if budget is None else budget.budget.spec,
            *[str(p) for p in positions],
            *request.allowed,
        )
        return _marked(array(await self._batcher.call(CLAIM_AND_MARK, tuple(keys), args)))

    async def _take_apart(self, draw: BudgetDraw) -> int:
        """The budget's take in a call of its own (a cluster: the bucket is in another slot)."""
        key = budget_key(self._keys.prefix, draw.principal)
        return integer(await self._batcher.call(TAKE, (key,), (draw.budget.spec,)))

    async def restore(self, request: MarkRequest, marked: MarkResult) -> None:
        key = self._keys.mark(request.aggregate_key)
        await self._batcher.call(RESTORE, (key,), (request.event_id, marked.previous, self._ttl_ms))

    async def repair(self, aggregate_key: str, rejected_id: str, head: Head | None) -> None:
        """Rides with the next round trip, unawaited: the appender never waits for Redis."""
        value = f"{head.type}|{head.event_id}||{head.version}" if head is not None else ""
        key = self._keys.mark(aggregate_key)
        self._batcher.submit(REPAIR, (key,), (rejected_id, value, self._ttl_ms))

    async def _certainly_new(self, aggregate_key: str) -> bool:
        ops: list[str] = ["GET", "u1", "0"]
        for position in filter_positions(aggregate_key):
            ops += ["GET", "u1", str(position)]
        bits = array(await self._batcher.call("BITFIELD", (self._keys.seen(),), tuple(ops)))
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
        if not bit:
            return False
        built_on = await self._batcher.call("GET", (self._keys.incarnation(),), ())
        return built_on is not None and text(built_on) == await self._incarnation()

    async def mark_filter_ready(self) -> None:
        run = await self._incarnation()
        await self._batcher.call("SET", (self._keys.incarnation(),), (run,))
        await self._batcher.call("SETBIT", (self._keys.seen(), "0", "1"), ())

    async def forget_filter(self) -> None:
        await self._batcher.call("SETBIT", (self._keys.seen(), "0", "0"), ())

    async def _incarnation(self) -> str:
        """The run id of the server holding the filter (new after every restart, and on a
        replica that took over)."""
        return await self._batcher.run_id(self._keys.seen())

    async def peek(self, aggregate_key: str) -> tuple[str, str] | None:
        """The mark's (event type, event id), read only; None when there is none."""
        raw = await self._batcher.call("GET", (self._keys.mark(aggregate_key),), ())
        if raw is None:
            return None
        event_type, _, rest = text(raw).partition("|")
        return event_type, rest.partition("|")[0]

    async def ping(self) -> bool:
        return await self._batcher.ping()

    async def drain(self) -> None:
        await self._batcher.drain()


class RedisCommandMemory:
    """The command-memory port over Redis: claims with a short bound, outcomes for the TTL."""

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
        self, aggregate_key: str, command_id: str, event_id: str, token: str
    ) -> CommandRecord | None:
        key = self._keys.command(aggregate_key, command_id)
        found = await self._batcher.call(CLAIM, (key,), (event_id, self._claim_ms, token))
        return None if found is None else _record(found)

    async def recall(self, aggregate_key: str, command_id: str) -> CommandRecord | None:
        found = await self._batcher.call(
            "GET", (self._keys.command(aggregate_key, command_id),), ()
        )
        return None if found is None else _record(found)

    async def recall_event(self, aggregate_key: str, event_id: str) -> CommandRecord | None:
        key = self._keys.event(aggregate_key, event_id)
        found = await self._batcher.call(RECALL_AGED, (key,), ())
        if not found:
            return None
        value, remaining = array(found)
        record = _record(value)
        age_s = max(0.0, (int(self._ttl_ms) - integer(remaining)) / 1000)
        return replace(record, age_s=age_s)

    async def resolve(
        self,
        aggregate_key: str,
        event_id: str,
        *,
        answer: bytes,
        command_answer: bytes | None,
        min_age_s: float,
    ) -> bool:
        found = await self.recall_event(aggregate_key, event_id)
        if found is None or found.state != "unknown":
            return False
        keys = [self._keys.event(aggregate_key, event_id)]
        if found.command_id:
            keys.append(self._keys.command(aggregate_key, found.command_id))
        args = (
            event_id,
            found.command_id,
            answer,
            self._ttl_ms,
            str(int(min_age_s * 1000)),
            "0" if command_answer is None else "1",
            command_answer or b"",
        )
        return bool(await self._batcher.call(RESOLVE, tuple(keys), args))

    async def settle(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        """Rides with the next round trip, unawaited: a lost outcome only makes a retry ask
        the store, which the derived event id makes safe."""
        key = self._keys.command(aggregate_key, command_id)
        self._batcher.submit("SET", (key,), (answer, "PX", self._ttl_ms))

    async def unknown(self, aggregate_key: str, command_id: str | None, event_id: str) -> None:
        by_event = self._keys.event(aggregate_key, event_id)
        by_command = self._keys.command(aggregate_key, command_id) if command_id else by_event
        await self._batcher.call(
            MARK_UNKNOWN, (by_command, by_event), (event_id, self._ttl_ms, command_id or "")
        )

    async def release(self, aggregate_key: str, command_id: str, token: str) -> None:
        key = self._keys.command(aggregate_key, command_id)
        await self._batcher.call(RELEASE, (key,), (token,))

    async def refused(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        """Rides with the next round trip, unawaited: a lost refusal only makes the outcome
        query answer none."""
        key = self._keys.refusal(aggregate_key, command_id)
        self._batcher.submit("SET", (key,), (answer, "PX", self._ttl_ms))

    async def recall_refusal(self, aggregate_key: str, command_id: str) -> bytes | None:
        key = self._keys.refusal(aggregate_key, command_id)
        found = await self._batcher.call("GET", (key,), ())
        if found is None:
            return None
        return data(found)


def _marked(reply: list[Reply]) -> MarkResult:
    """What the claim-and-mark script answered (seven strings), as a ``MarkResult``."""
    # Decoded in one pass (a call per field cost five).
    status, after, current, previous, _record_text, takeover, version = [
        v.decode() if isinstance(v, bytes) else str(v) for v in reply
    ]
    if status == "over_budget":
        return MarkResult(status, retry_after_ms=int(after))
    return MarkResult(
        status=status,
        after=after or NEW_AGGREGATE,
        current=None if current in ("none", "") else current,
        previous=previous,
        record=_record(reply[4]) if status in ("answered", "busy") else None,
        takeover=takeover == "1",
        version=int(version) if version else None,
    )


def _record(raw: Reply) -> CommandRecord:
    value = data(raw)
    if value.startswith(b"pending|"):
        event_id, _, token = value[8:].decode().partition("|")
        return CommandRecord("pending", event_id, token=token)
    if value.startswith(b"unknown|"):  # by event id: ``unknown|<event id>|<command id>``
        event_id, _, command_id = value[8:].decode().partition("|")
        return CommandRecord("unknown", event_id, command_id=command_id)
    return CommandRecord("answered", answer=value)
