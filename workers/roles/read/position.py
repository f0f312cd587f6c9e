"""A position in the global read: the next offset of every partition of events.stored, as an
opaque text bound to one fleet's log.

A position is base64url (no padding) of ``version | fleet tag | partition count | one offset per
partition | MAC``: the offsets as unsigned LEB128 varints, the fleet tag (4 bytes) and the MAC
(12 bytes) HMAC-SHA256 under a random key kept in the fleet's store (``Stores.position_key``),
over the topic's name as well. So a position made by another fleet (another store, or another
topic prefix) is told apart from one altered or cut short, and neither is ever read as offsets:
both are refused with a sentence saying which. A position that counts another number of
partitions than the topic has now is well formed but outdated (``PositionOutdated``): the
fleet's key partitioning moved aggregates between partitions, so its offsets no longer say
what was read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from topics.errors import InvalidInput, PositionOutdated

VERSION = 1
TAG_BYTES = 4
MAC_BYTES = 12
MAX_CHARS = 8192
"""A longer position is refused unread (about 900 partitions at 9-byte offsets)."""
MAX_OFFSET = 2**63 - 1
_TEXT = re.compile(r"[A-Za-z0-9_-]+\Z")
_PASS_BACK = "pass back a `next` (or an SSE id) exactly as the fleet gave it, or leave it out"


@dataclass(frozen=True, slots=True)
class Positions:
    """Makes and reads the positions of one fleet's stored-event log (``topic``), under the
    fleet's ``key``."""

    key: bytes
    topic: str

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("a position key has at least 16 bytes")

    @property
    def tag(self) -> bytes:
        """Which fleet's log: the same for every position of this topic under this key."""
        return self._digest(b"fleet", b"")[:TAG_BYTES]

    def encode(self, offsets: Mapping[int, int], partitions: int) -> str:
        """The position of ``offsets`` (the next offset per partition, 0 where not named)."""
        body = bytes([VERSION]) + self.tag + _varint(partitions)
        body += b"".join(_varint(offsets.get(p, 0)) for p in range(partitions))
        mac = self._digest(b"position", body)[:MAC_BYTES]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")

    def decode(self, text: str, *, partitions: int | None = None) -> dict[int, int]:
        """The offsets ``text`` names; InvalidInput for text this fleet did not make as it is,
        PositionOutdated when it counts other ``partitions`` than the topic has now."""
        raw = _unpacked(text)
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if body[0] != VERSION:
            raise _refused(text, f"is of format {body[0]}, which this fleet does not read")
        if not hmac.compare_digest(body[1 : 1 + TAG_BYTES], self.tag):
            raise _refused(
                text, f"was made by another fleet (another store or topic than {self.topic})"
            )
        if not hmac.compare_digest(mac, self._digest(b"position", body)[:MAC_BYTES]):
            raise _refused(text, "was altered or cut short (its MAC does not match)")
        values, at = [], 1 + TAG_BYTES
        while at < len(body):
            value, at = _read_varint(body, at)
            values.append(value)
        count, offsets = values[0], values[1:]
        if len(offsets) != count:  # only a bug of ours signs such a position
            raise _refused(text, f"names {len(offsets)} offsets for {count} partitions")
        if partitions is not None and count != partitions:
            raise PositionOutdated(
                f"the position was made when {self.topic} had {count} partitions; it has "
                f"{partitions} now, so aggregates moved between partitions and its offsets no "
                "longer say what was read; read again from the beginning (no after)."
            )
        return dict(enumerate(offsets))

    def _digest(self, purpose: bytes, body: bytes) -> bytes:
        message = purpose + b"\0" + self.topic.encode() + b"\0" + body
        return hmac.new(self.key, message, hashlib.sha256).digest()


def _unpacked(text: str) -> bytes:
    if not 0 < len(text) <= MAX_CHARS or not _TEXT.match(text):
        raise _refused(text, f"is not one: a position is 1 to {MAX_CHARS} characters of base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _refused(text, "is not base64url") from None
    if len(raw) < 1 + TAG_BYTES + 1 + MAC_BYTES:
        raise _refused(text, "is cut short (too few bytes for a position)")
    return raw


def _refused(text: str, why: str) -> InvalidInput:
    shown = text if len(text) <= 48 else text[:48] + "…"
    return InvalidInput(f"position {shown!r} {why}; {_PASS_BACK}.")


def _varint(value: int) -> bytes:
    if not 0 <= value <= MAX_OFFSET:
        raise ValueError(f"an offset is 0 to {MAX_OFFSET}, not {value}")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(body: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(body) or shift > 63:
            raise InvalidInput("a position's offsets are cut short")
        byte = body[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at
