"""The bus the bridge role publishes to, built from the settings: Redis Streams or NATS JetStream.

Names follow the topic prefix, so fleets sharing a Redis or a NATS server stay apart: the Redis
stream is ``<prefix>events.stored``; the NATS stream is the prefix in capitals with ``EVENTS``
(``EVENTFLEET_EVENTS``) and its subjects are ``<prefix>events.<event type>``.
"""

from __future__ import annotations

import re

from workers.adapters.redis import RedisEventBus
from workers.ports import EventBus
from workers.runtime.settings import Settings


def nats_stream(prefix: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{prefix}events").strip("_").upper()


def bridge_bus(settings: Settings) -> EventBus:
    """The bus of ``EVENTFLEET_BRIDGE_BUS``; connections open on first use and fail as
    BusUnavailable."""
    prefix = settings.topic_prefix
    if settings.bridge_bus == "nats":
        # Imported only here: the NATS client (0.15 to 0.2 s of CPU) is not loaded by every
        # process that starts, only by a bridge that publishes to NATS.
        from workers.adapters.nats import NatsEventBus

        return NatsEventBus(
            settings.nats_url,
            stream=nats_stream(prefix),
            subject_prefix=f"{prefix}events".rstrip("."),
            timeout_ms=settings.redis_timeout_ms,
        )
    return RedisEventBus(
        settings.redis_url,
        stream=f"{prefix}events.stored",
        group_prefix=f"{prefix}bus",
        timeout_ms=settings.redis_timeout_ms,
    )
