"""Event buses: the ``EventBus`` port's shared machinery and the in-process bus.

Each bus, and what it guarantees of delivery:

``InProcessEventBus`` (here)
    at-most-once: handlers run inside ``publish``; a failure is not retried.
``workers.adapters.redis.RedisEventBus``
    at-least-once, durable: Redis Streams, a consumer group per subscriber.
``workers.adapters.nats.NatsEventBus``
    at-least-once, durable: JetStream, a durable consumer per subscriber.
``workers.adapters.kafka.KafkaEventBus``
    at-least-once, durable: ``events.stored``, a consumer group per subscriber.

The durable buses live with their technology's other adapters and build on this package: its
errors (driver errors become ``BusUnavailable`` or ``BusError`` there, once), how a subscription
hands an event to its handler (``Delivery``), the loop that reads for it (``ReadLoop``) and the
registry of live subscriptions (``common``); and their policies (``policies``): ``RetryPolicy``
and ``PullPolicy`` (how a Redis or NATS subscription pulls: batch, wait, redelivery).

Every bus accepts stored events only (``publish`` of an event without a version raises
``InvalidInput``). On the durable buses a failing handler is retried with backoff up to
``RetryPolicy.max_attempts`` runs (5 by default, backoff 0.2 s doubling to 5 s), then
the event is dead-lettered (Redis: stream ``<stream>.dead``; NATS: subject
``<prefix>.dead.<type>``; Kafka: the ``events.dlq`` topic); a handler may see an event
more than once, so it must be idempotent by event id. Subscribing with ``durable=`` on
a durable bus resumes where that name stopped; without it a subscription sees only
events published after ``subscribe`` returned.
"""

from __future__ import annotations

from workers.bus.common import ANY_TYPE, BusClosed, BusError, BusUnavailable
from workers.bus.inprocess import InProcessEventBus
from workers.bus.policies import PullPolicy, RetryPolicy

__all__ = [
    "ANY_TYPE",
    "BusClosed",
    "BusError",
    "BusUnavailable",
    "InProcessEventBus",
    "PullPolicy",
    "RetryPolicy",
]
