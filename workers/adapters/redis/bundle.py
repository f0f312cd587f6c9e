"""Every call of one round trip in one script call: one command and one reply for the batch.

redis-py reads a pipeline's replies one by one, each through a timeout context and a parser
call of its own, after queuing and packing each command on its own: together about as much of
the caller's CPU per command as the rest of a marked command's path in Redis. On a standalone
Redis (or a Sentinel's master) the batcher sends the calls of a round trip as the arguments of
one script instead, ``Bundle``: each of our scripts is a Lua function of it, a plain command
(``GET``, ``SET``, ``BITFIELD`` …) runs through ``redis.call``, and each call runs under
``pcall``, so an error answers that call alone, as it did in a pipeline. The script runs them
in order, atomically (a pipeline only kept them in order). A Redis Cluster keeps the pipeline:
a batch's keys span slots, and one script may touch one slot only.

The arguments: the number of calls, then per call its operation (0: a plain command, its
name the first argument; ``n``: the ``n``-th script), its counts of keys and arguments, and
its arguments; the keys of every call follow one another. The reply has one entry per call:
``{1, reply}`` (``{1}`` when the reply is nil; a status such as ``OK`` as 1, which equals the
True redis-py answers it with alone) or ``{0, message}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import ResponseError

from workers.adapters.redis.replies import Lua, Reply, text

MAX_CALLS = 256
"""Calls per script call: a larger batch is sent as several."""
MAX_CALL_ARGS = 1000
"""Keys and arguments of one call the bundle takes: a plain command is rebuilt in Lua with
``unpack``, which Lua's stack bounds (about 8,000 values: a larger one would fail the whole
script, every call of the round trip with it). A round trip holding a larger call (the
new-aggregate filter's notes of a big batch) goes as a pipeline."""

_RUN = """
local n, k, a = tonumber(ARGV[1]), 0, 1
local out = {}
for c = 1, n do
  local op, nk, na = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  a = a + 3
  local keys, args = {}, {}
  for i = 1, nk do keys[i] = KEYS[k + i] end
  for i = 1, na do args[i] = ARGV[a + i] end
  k, a = k + nk, a + na
  local ok, r
  if op == 0 then
    local command = {args[1]}
    for i = 1, nk do command[#command + 1] = keys[i] end
    for i = 2, na do command[#command + 1] = args[i] end
    ok, r = pcall(function() return redis.call(unpack(command)) end)
  else
    ok, r = pcall(OPS[op], keys, args)
  end
  if ok then
    if type(r) == 'table' and r.ok then r = 1 end  -- a status (OK, PONG): true, as alone
    out[c] = {1, r}
  elseif type(r) == 'table' and r.err then
    out[c] = {0, r.err}
  else
    out[c] = {0, tostring(r)}
  end
end
return out
"""


class Bundle:
    """The script that runs a batch of calls, built from the scripts those calls may name."""

    def __init__(self, scripts: Sequence[Lua]) -> None:
        functions = ",\n".join(f"function(KEYS, ARGV)\n{s.source}\nend" for s in scripts)
        self.lua = Lua(f"local OPS = {{\n{functions}\n}}\n{_RUN}")
        self._ops = {script.sha: n for n, script in enumerate(scripts, start=1)}

    def arguments(
        self, calls: Sequence[tuple[Lua | str, tuple[str, ...], tuple[str | bytes, ...]]]
    ) -> tuple[list[str], list[str | bytes | int]]:
        """The keys and the arguments of one script call running ``calls`` (op, keys, args)."""
        keys: list[str] = []
        args: list[str | bytes | int] = [len(calls)]
        for op, call_keys, call_args in calls:
            if isinstance(op, Lua):
                args += (self._ops[op.sha], len(call_keys), len(call_args), *call_args)
            else:
                args += (0, len(call_keys), len(call_args) + 1, op, *call_args)
            keys += call_keys
        return keys, args

    @staticmethod
    def replies(reply: Reply, count: int) -> list[Reply | Exception]:
        """Each call's reply, or the error Redis answered it with (as a pipeline gives it)."""
        if not isinstance(reply, list) or len(reply) != count:
            raise ResponseError(f"a bundle of {count} calls was answered {reply!r:.200}")
        out: list[Reply | Exception] = []
        for entry in reply:
            if not isinstance(entry, list) or not entry:
                raise ResponseError(f"a bundled call was answered {entry!r:.200}")
            if entry[0] == 1:
                out.append(entry[1] if len(entry) > 1 else None)
            else:
                message = entry[1] if len(entry) > 1 else b"error"
                out.append(ResponseError(text(message)))
        return out
