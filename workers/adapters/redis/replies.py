"""What our Redis calls name and answer: a Lua script with its SHA1, and the replies as redis-py
hands them over, with the narrowing each caller needs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TypeAlias

Reply: TypeAlias = bytes | int | list["Reply"] | None
"""What a call answers, as redis-py hands it over with ``decode_responses`` off (as
``connect_redis`` connects): a bulk string as bytes (``GET``, a Lua string), an integer (``SETBIT``,
a Lua number, Lua true as 1), nil as None (Lua false too), an array as a list (a Lua table,
``BITFIELD``); a status (``SET``, ``PING``) as True, or as 1 from inside the bundle script: both
equal 1. An error reply is no Reply: the call raises ``MarkerUnavailable``."""


@dataclass(frozen=True, slots=True)
class Lua:
    """A Lua script and its SHA1, as Redis names it for EVALSHA."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def text(value: Reply) -> str:
    """A reply as text: a bulk string decoded, anything else as ``str`` shows it."""
    return value.decode() if isinstance(value, bytes) else str(value)


def data(value: Reply) -> bytes:
    """A reply as bytes: a bulk string as it is, anything else as ``str`` shows it, encoded."""
    return value if isinstance(value, bytes) else str(value).encode()


def array(value: Reply) -> list[Reply]:
    """An array reply (a Lua table, ``BITFIELD``); anything else is a TypeError, as unpacking
    it would have been."""
    if isinstance(value, list):
        return value
    raise TypeError(f"Redis answered {value!r} where an array was expected")


def integer(value: Reply) -> int:
    """A number Redis answered as an integer or as a string (Lua's ``tostring``)."""
    if isinstance(value, bytes | int):
        return int(value)
    raise TypeError(f"Redis answered {value!r} where a number was expected")
