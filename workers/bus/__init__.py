"""Event buses: the ``EventBus`` port over in-process calls, Redis Streams, NATS JetStream and Kafka.

| bus                 | delivery guarantee                                                             |
|---------------------|--------------------------------------------------------------------------------|
| `InProcessEventBus` | at-most-once: handlers run inside `publish`; a failure is logged, not retried  |
| `RedisEventBus`     | at-least-once, durable (Streams, group per subscription, XAUTOCLAIM, dead-letter stream) |
| `NatsEventBus`      | at-least-once, durable (JetStream, durable consumer, nak with backoff, dead-letter subject) |
| `KafkaEventBus`     | at-least-once, durable (events.stored, group per subscription, commit after success, DLQ) |

Every bus accepts stored events only (``publish`` of an event without a version raises
``InvalidInput``). On the durable buses a failing handler is retried with backoff up to
``RetryPolicy.max_attempts`` runs (5 by default), then the event is dead-lettered; a
handler may see an event more than once, so it must be idempotent by event id.
"""

from __future__ import annotations

from workers.bus.common import (
    ANY_TYPE,
    BusClosed,
    BusError,
    BusUnavailable,
    RetryPolicy,
)
from workers.bus.inprocess import InProcessEventBus
from workers.bus.kafka import KafkaEventBus
from workers.bus.nats import NatsEventBus
from workers.bus.redis import RedisEventBus

__all__ = [
    "ANY_TYPE",
    "BusClosed",
    "BusError",
    "BusUnavailable",
    "InProcessEventBus",
    "KafkaEventBus",
    "NatsEventBus",
    "RedisEventBus",
    "RetryPolicy",
]
