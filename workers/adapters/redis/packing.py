"""Commands packed by hiredis (C) instead of redis-py's pure-Python packer.

redis-py's asyncio connections pack every argument in Python: about 12 µs for one of our
check-and-mark calls (an EVALSHA with three keys and a dozen arguments), against 1 µs for
``hiredis.pack_command``, which its sync client uses but its asyncio client does not. Only
what both pack to the same bytes goes to hiredis (str, bytes and int arguments, UTF-8 strict,
a command name without spaces); anything else keeps redis-py's own packer and its errors.
"""

from __future__ import annotations

import hiredis
from redis._parsers.encoders import Encoder
from redis.asyncio.connection import AbstractConnection
from redis.typing import EncodableT

_PLAIN = frozenset((str, bytes, int))


class FastPacking:
    """Mixin for a redis-py asyncio connection class: ``pack_command`` through hiredis."""

    encoder: Encoder

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        if (
            _plain(args)
            and self.encoder.encoding == "utf-8"
            and (self.encoder.encoding_errors == "strict")
        ):
            # hiredis's stub types the command as a 1-tuple, not a tuple of any length.
            return [hiredis.pack_command(args)]  # type: ignore[arg-type]  # stub too narrow
        # A mixin: the connection class it is mixed into has pack_command.
        return super().pack_command(*args)  # type: ignore[misc, no-any-return]  # mixin's super


def _plain(args: tuple[EncodableT, ...]) -> bool:
    if not args or (isinstance(args[0], str | bytes) and " " in args[0]):
        return False  # redis-py splits "CONFIG GET" into two arguments
    # Not bool, float, None or memoryview; the set of types is built in C, without a Python
    # step per argument (a generator here was a fifth of the calls of a command's packing).
    return _PLAIN.issuperset(map(type, args))


_classes: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def fast_packing(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    """``cls`` with ``FastPacking`` mixed in (one subclass per class)."""
    if issubclass(cls, FastPacking):
        return cls
    fast = _classes.get(cls)
    if fast is None:
        fast = type(f"Fast{cls.__name__}", (FastPacking, cls), {})
        _classes[cls] = fast
    return fast
