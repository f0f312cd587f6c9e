"""Where a key's records go: the Java client's partitioning (murmur2), shared by the Kafka
producer, the append progress and the in-memory twin, at a fraction of aiokafka's cost.

aiokafka hashes every key in pure Python byte by byte (about 3% of the commands role's CPU
and of the appender's producing). Here the key's 32-bit words are unpacked at once, and a
key's hash is remembered: an appender sees the same aggregates batch after batch, and a
command path sees an order placed, then paid, then shipped. The partition is the one the
Java client and aiokafka choose for the same key, so records of one aggregate keep one
partition whoever produced them.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as org.apache.kafka.common.utils.Utils.murmur2 computes it
    (unsigned: the caller masks the sign bit off, as Java's toPositive does)."""
    length = len(data)
    h = _SEED ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        base = length & ~3
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the default partitioner of Kafka's clients (aiokafka's too) picks for
    ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def check_key(key: object) -> None:
    """TypeError unless ``key`` is a record key (bytes): what a partition is asked of."""
    if not isinstance(key, bytes):
        raise TypeError(
            "a record key is bytes (an aggregate's b'<type>:<id>'), "
            f"got {type(key).__name__} {key!r:.80}"
        )


class CachedPartitioner:
    """aiokafka's ``partitioner``: a key's partition by murmur2, each key hashed once while
    it stays among the last ``size`` keys seen (the memory is cleared when it is full)."""

    def __init__(self, size: int = 16384) -> None:
        self._hashes: dict[bytes, int] = {}
        self._size = size

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:  # as aiokafka does: any partition that has a leader
            return random.choice(available or all_partitions)
        return all_partitions[self.hash(key) % len(all_partitions)]

    def hash(self, key: bytes) -> int:
        """The key's murmur2 with the sign bit off."""
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= self._size:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return h
