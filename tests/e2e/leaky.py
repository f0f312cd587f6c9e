"""The default domains, for a worker whose Faust loses records the way it does by chance under
load, every time: a rebalance's recovery seeks its streams to the committed offsets, and before
it resumes them it now waits (up to ``EVENTFLEET_TEST_LEAK_WINDOW_S``) until records fetched
since the seek sit in its stream queues; resuming clears those queues, so these records never
reach an agent while the fetch position has moved past them. Faust's own race, made certain;
``EVENTFLEET_DOMAINS=tests.e2e.leaky:domains``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from faust.transport.consumer import Consumer

from snapshot_rules.domain import Domains
from workers.examples.domains import default_domains

_perform_seek = Consumer.perform_seek


async def _seek_then_wait_for_queued_records(self: Any) -> None:
    await _perform_seek(self)
    queues = self.app.flow_control._queues  # the queues the resume clears
    loop = asyncio.get_running_loop()
    deadline = loop.time() + float(os.environ.get("EVENTFLEET_TEST_LEAK_WINDOW_S", "5"))
    # Faust signals nothing when a queue fills: a bounded poll, in a fault injector only.
    while loop.time() < deadline and not any(queue.qsize() for queue in list(queues)):  # noqa: ASYNC110
        await asyncio.sleep(0.005)


Consumer.perform_seek = _seek_then_wait_for_queued_records  # type: ignore[method-assign]


def domains() -> Domains:
    return default_domains()
