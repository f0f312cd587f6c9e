"""The default domains, for a worker whose Faust loses records the way it does by chance under
load, every time: a rebalance's recovery seeks its streams to the committed offsets, and before
it resumes them it now waits (up to ``EVENTFLEET_TEST_LEAK_WINDOW_S``) until records fetched
since the seek sit in its stream queues; resuming clears those queues, so these records never
reach an agent while the fetch position has moved past them. Faust's own race, made certain.

Then (on a busy machine the fetcher may bring nothing within the window, or the queued records
may reach an agent first) the injector moves the fetch position of every ``….events`` partition
past ``EVENTFLEET_TEST_LEAK_RECORDS`` records (default 5) itself, which is what the race leaves behind: records between the committed offset
and the fetch position that no agent received. ``EVENTFLEET_DOMAINS=tests.e2e.leaky:domains``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from faust.transport.consumer import Consumer

from snapshot_rules.domain import Domains
from workers.examples.domains import default_domains

log = logging.getLogger(__name__)

_perform_seek = Consumer.perform_seek


async def _seek_then_lose_records(self: Any) -> None:
    await _perform_seek(self)
    queues = self.app.flow_control._queues  # the queues the resume clears
    loop = asyncio.get_running_loop()
    deadline = loop.time() + float(os.environ.get("EVENTFLEET_TEST_LEAK_WINDOW_S", "5"))
    # Faust signals nothing when a queue fills: a bounded poll, in a fault injector only.
    while loop.time() < deadline and not any(queue.qsize() for queue in list(queues)):  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    if any(queue.qsize() for queue in list(queues)):
        log.warning("lost on purpose: records queued since the seek are cleared by the resume")
    # And in every case past the first records too: the queued ones may be delivered before the
    # resume clears anything (under load, 1 run of a suite lost none and proved nothing), while
    # the fetcher, moved to ``committed + N``, never brings the first N again.
    await _move_past_records(self, int(os.environ.get("EVENTFLEET_TEST_LEAK_RECORDS", "5")))


async def _move_past_records(consumer: Any, count: int) -> None:
    """Seek each ``….events`` partition holding more than ``count`` records past its committed
    offset to ``committed + count``: those records never reach an agent."""
    committed = {tp: offset for tp, offset in consumer._committed_offset.items()
                 if tp.topic.endswith(".events") and offset is not None}  # fmt: skip
    if not committed:
        return
    ends = await consumer.highwaters(*committed)
    forward = {tp: offset + count for tp, offset in committed.items()
               if (ends.get(tp) or 0) > offset + count}  # fmt: skip
    if forward:
        log.warning(
            "lost on purpose: moving past %d records on %s", count, sorted(map(str, forward))
        )
        await consumer.seek_wait(forward)


Consumer.perform_seek = _seek_then_lose_records  # type: ignore[method-assign]


def domains() -> Domains:
    return default_domains()
