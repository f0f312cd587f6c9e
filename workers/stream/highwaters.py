"""High-water marks from a fetch, not from ListOffsets: the end of a partition, for table recovery.

Faust recovers a table by reading its changelog partitions up to their high-water marks, which
it asks with ListOffsets (``end_offsets``). Tansu, the embedded broker, answers ListOffsets
with the end of all but the last record batch, so recovery would stop short and lose the
newest rule states. A fetch response carries the true high-water mark: a short-lived consumer
without a group fetches once from each partition's listed end and reads it. On a real Kafka
the two agree, and the fetch costs one round trip per rebalance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)
TP = TypeVar("TP")
"""A topic partition, as the consumer names it."""


class FetchingConsumer(Protocol):
    """What is used of an unstarted, group-less aiokafka consumer (its own module is untyped)."""

    _fetch_max_wait_ms: int

    async def start(self) -> None: ...

    def assign(self, partitions: Sequence[object]) -> None: ...

    def seek(self, partition: object, offset: int) -> None: ...

    def highwater(self, partition: object) -> int | None: ...

    async def getmany(self, *, timeout_ms: int) -> object: ...

    async def stop(self) -> None: ...


async def fetched_highwaters(
    new_consumer: Callable[[], FetchingConsumer],
    listed: Mapping[TP, int | None],
    *,
    fetch_wait_ms: int,
    timeout_s: float = 5.0,
) -> dict[TP, int | None]:
    """``listed`` raised to each partition's fetched high-water mark (never lowered).

    ``new_consumer`` builds an unstarted group-less aiokafka consumer. A partition that
    answers no fetch within ``timeout_s`` keeps its listed value, so a slow broker costs an
    incomplete recovery (old rule states), never a stuck one.
    """
    wanted = [tp for tp, end in listed.items() if end is not None]
    if not wanted:
        return dict(listed)
    consumer = new_consumer()
    consumer._fetch_max_wait_ms = fetch_wait_ms  # a long poll is not released early on Tansu
    found: dict[TP, int | None] = dict(listed)
    try:
        await consumer.start()
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, max((listed[tp] or 0) - 1, 0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and any(consumer.highwater(tp) is None for tp in wanted):
            await consumer.getmany(timeout_ms=max(fetch_wait_ms * 2, 50))
        for tp in wanted:
            fetched = consumer.highwater(tp)
            if fetched is not None:
                found[tp] = max(fetched, listed[tp] or 0)
    except Exception as e:  # a recovery with listed offsets is still a recovery
        log.warning("fetching high-water marks failed, using ListOffsets: %r", e)
    finally:
        await consumer.stop()
    return found
