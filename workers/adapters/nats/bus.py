"""The NATS event bus on JetStream, one durable pull consumer per subscription.

Guarantee: at-least-once, durable -- an event is redelivered until its handler succeeds or is
dead-lettered.

``publish`` stores the event in the stream ``stream`` (created if missing) under the
subject ``<subject_prefix>.<event type>``, with the event id as ``Nats-Msg-Id`` so a
republish inside the server's duplicate window is stored once. Each subscription is a
durable consumer filtered server-side on its type (``<subject_prefix>.*`` for ``"*"``).
A handler that succeeds acks; one that fails naks with a delay from ``RetryPolicy``
(exponential), so JetStream redelivers it while later events keep flowing: after a
failure, order within a subscription is not kept. When the delivery count reaches
``max_attempts`` the event is published to ``<subject_prefix>.dead.<type>`` (stream
``<stream>_DEAD``, headers carry the reason) and acked. Each subscription fetches as its
``PullPolicy`` says (``batch_size`` at a time, each fetch waiting up to ``wait_ms``); a
consumer that stops without acking gets its events back after ``redeliver_after_ms`` (the
consumer's ``ack_wait``).

Handlers may see an event more than once: they must be idempotent by event id. A new
consumer starts with events published after ``subscribe`` returned; a durable one
resumes after its last ack, also across ``cancel`` and restarts. A consumer created
without a durable name is deleted on cancel (and by the server after an hour idle).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from functools import partial
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from topics.envelope import Event, encode
from topics.errors import InvalidInput, Unavailable
from workers.bus.common import (
    BusError,
    BusUnavailable,
    ReadLoop,
    Subscriptions,
    bounded,
    dead_letter_until_done,
    decode_bus_event,
    matches,
    require_stored,
)
from workers.bus.policies import PullPolicy, RetryPolicy, require_positive
from workers.ports import Handler, Subscription
from workers.secrets import mask_url

log = logging.getLogger(__name__)
T = TypeVar("T")
_IDLE_CONSUMER_S = 3600.0


class NatsEventBus:
    """Publishes to a JetStream stream; each subscription is a durable pull consumer on it.

    ``retry``: how a failing handler is retried before its event is dead-lettered; ``pull``:
    how each subscription fetches (batch, wait, redelivery after); ``max_msgs``: the most
    events the stream keeps (the oldest go first); ``timeout_ms``: the bound of one call.
    """

    def __init__(
        self,
        nats_url: str = "nats://127.0.0.1:4222",
        *,
        stream: str = "EVENTFLEET_EVENTS",
        subject_prefix: str = "eventfleet.events",
        retry: RetryPolicy | None = None,
        pull: PullPolicy | None = None,
        max_msgs: int = 1_000_000,
        timeout_ms: int = 2_000,
    ) -> None:
        require_positive("NatsEventBus", max_msgs=max_msgs, timeout_ms=timeout_ms)
        self.nats_url = nats_url
        self.stream = stream
        self.dead_letter_stream = f"{stream}_DEAD"
        self.subject_prefix = subject_prefix
        self.retry = retry or RetryPolicy()
        self.pull = pull or PullPolicy()
        self.max_msgs = max_msgs
        self.timeout_s = timeout_ms / 1000
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self._subscriptions = Subscriptions(f"NATS event bus on {stream}")

    async def call(self, what: str, call: Awaitable[T]) -> T:
        """Await one NATS call within the timeout, translating driver errors once, here."""
        async with _translated(what):
            return await bounded(call, self.timeout_s)

    async def jetstream(self) -> JetStreamContext:
        """Connect on first use and make sure both streams exist."""
        self._subscriptions.check_open()
        async with self._lock:
            if self._js is None:
                nc = await self.call(f"connecting to {mask_url(self.nats_url)}", self._connect())
                try:
                    js = nc.jetstream(timeout=self.timeout_s)
                    await self._ensure_stream(js, self.stream, f"{self.subject_prefix}.*")
                    await self._ensure_stream(
                        js, self.dead_letter_stream, f"{self.subject_prefix}.dead.*"
                    )
                except BaseException:
                    await self._close_connection(nc)
                    raise
                self._nc, self._js = nc, js
            return self._js

    async def _connect(self) -> Client:
        async def on_error(e: Exception) -> None:
            log.warning("NATS bus connection to %s: %r", self.nats_url, e)

        return await nats.connect(
            servers=[self.nats_url],
            connect_timeout=max(int(self.timeout_s), 1),
            max_reconnect_attempts=-1,  # keep the subscriptions alive across outages
            reconnect_time_wait=1,
            error_cb=on_error,
        )

    async def _ensure_stream(self, js: JetStreamContext, name: str, subject: str) -> None:
        try:
            await self.call(f"looking up stream {name}", js.stream_info(name))
            return
        except BusError as e:
            if not isinstance(e.__cause__, nats.js.errors.NotFoundError):
                raise
        config = StreamConfig(name=name, subjects=[subject], max_msgs=self.max_msgs)
        await self.call(f"creating stream {name} on {subject}", js.add_stream(config))

    async def publish(self, event: Event) -> None:
        """Store ``event`` in the stream; raises BusUnavailable when JetStream does not ack."""
        require_stored(event)
        js = await self.jetstream()
        await self.call(
            f"publishing event {event.id} to {self.stream}",
            js.publish(
                f"{self.subject_prefix}.{event.type}",
                encode(event),
                headers={"Nats-Msg-Id": event.id},
            ),
        )

    async def subscribe(
        self, event_type: str, handler: Handler, *, durable: str | None = None
    ) -> Subscription:
        """Deliver ``event_type`` events (``"*"``: all) to ``handler`` until cancelled.

        With ``durable`` the consumer outlives the subscription: subscribing again under
        the same name resumes after the last acknowledged event.
        """
        name = self._subscriptions.opening(event_type, durable)
        js = await self.jetstream()
        # Event types are single subject tokens and "*" is NATS's own one-token wildcard.
        reader = _Reader(self, js, name, f"{self.subject_prefix}.{event_type}", event_type, handler)
        await reader.bind(ephemeral=durable is None)
        return self._subscriptions.added(reader)

    async def close(self) -> None:
        """Stop every subscription, then the connection, each bounded by a timeout."""
        await self._subscriptions.close()
        async with self._lock:
            nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            await self._close_connection(nc)

    async def _close_connection(self, nc: Client) -> None:
        try:
            await bounded(nc.close(), self.timeout_s)
        except (TimeoutError, nats.errors.Error, OSError) as e:
            log.warning("closing the NATS bus connection failed: %r", e)


class _Reader:
    """One subscription: a pull consumer fetched by a background task."""

    def __init__(
        self,
        bus: NatsEventBus,
        js: JetStreamContext,
        name: str,
        subject: str,
        event_type: str,
        handler: Handler,
    ) -> None:
        self.bus, self.js, self.name, self.subject = bus, js, name, subject
        self.event_type, self.handler = event_type, handler
        self.where = f"nats bus {bus.stream} consumer {name}"
        self.ephemeral = False
        self.loop = ReadLoop(self.where, bus.retry)
        self.sub: JetStreamContext.PullSubscription | None = None

    async def bind(self, *, ephemeral: bool) -> None:
        self.ephemeral = ephemeral
        bus = self.bus
        try:
            info = await bus.call(
                f"looking up {self.where}", self.js.consumer_info(bus.stream, self.name)
            )
        except BusError as e:
            if not isinstance(e.__cause__, nats.js.errors.NotFoundError):
                raise
            await bus.call(
                f"creating {self.where}", self.js.add_consumer(bus.stream, self._config())
            )
        else:
            if info.config.filter_subject != self.subject:
                raise BusError(
                    f"{self.where} already exists on {info.config.filter_subject!r}, not"
                    f" {self.subject!r}; pick another durable name for another event type"
                )
        self.sub = await bus.call(
            f"binding {self.where}",
            self.js.pull_subscribe_bind(durable=self.name, stream=bus.stream),
        )
        self.loop.start(self._fetch, self._failed)

    def _config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            filter_subject=self.subject,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.bus.pull.redeliver_after_s,
            max_deliver=-1,  # the bound is ours (RetryPolicy), so dead letters are never silent
            inactive_threshold=_IDLE_CONSUMER_S if self.ephemeral else None,
        )

    async def stop(self) -> None:
        """Let the running fetch expire rather than cancel it (an abandoned pull would swallow
        events), then unbind."""
        self.loop.stopping = True
        task = self.loop.task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=self.bus.pull.wait_s + self.bus.timeout_s)
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=self.bus.timeout_s)
        try:
            if self.sub is not None:
                await self.bus.call("unsubscribing", self.sub.unsubscribe())
            if self.ephemeral:
                await self.bus.call(
                    f"deleting {self.where}", self.js.delete_consumer(self.bus.stream, self.name)
                )
        except (Unavailable, BusError, ValueError) as e:
            log.warning("%s: cleanup after cancel failed: %s", self.where, e)

    async def _fetch(self) -> None:
        assert self.sub is not None
        try:
            pull = self.bus.pull
            msgs = await self.sub.fetch(pull.batch_size, timeout=pull.wait_s)
        except TimeoutError:  # nats-py raises both its own and asyncio's: nothing came
            return
        for msg in msgs:
            try:
                await self.handle(msg)
            except Exception:  # unacked, so JetStream redelivers it after redeliver_after_ms
                log.exception("%s: delivering a message failed unexpectedly", self.where)

    async def _failed(self, e: Exception, failures: int) -> None:
        log.warning("%s: fetch failed (%d in a row), retrying: %r", self.where, failures, e)

    async def handle(self, msg: Msg) -> None:
        if self.loop.stopping:
            await _quietly(msg.nak())  # hand it straight back to the next subscriber
            return
        attempt = msg.metadata.num_delivered
        log.debug("%s: message %s, delivery %d", self.where, msg.metadata.sequence.stream, attempt)
        try:
            event = decode_bus_event(msg.data)
        except InvalidInput as e:
            await self.dead_letter(msg, f"not a stored event envelope: {e}", attempt)
            return
        if not matches(self.event_type, event):
            await _quietly(msg.ack())
            return
        if attempt > self.bus.retry.max_attempts:  # its earlier consumers died mid-handler
            await self.dead_letter(msg, f"already delivered {attempt - 1} times", attempt - 1)
            return
        try:
            await self.handler(event)
        except asyncio.CancelledError:
            await _quietly(msg.nak())
            raise
        except Exception as e:
            log.warning(
                "%s: handler failed on event %s (%s), attempt %d of %d: %r",
                self.where,
                event.id,
                event.type,
                attempt,
                self.bus.retry.max_attempts,
                e,
            )
            if attempt >= self.bus.retry.max_attempts:
                await self.dead_letter(msg, f"handler failed: {e!r}", attempt)
            else:
                await _quietly(msg.nak(delay=self.bus.retry.backoff_s(attempt)))
            return
        await _quietly(msg.ack())

    async def dead_letter(self, msg: Msg, reason: str, attempts: int) -> None:
        write = partial(self._publish_dead, msg)
        what = f"message {msg.metadata.sequence.stream}"
        await dead_letter_until_done(write, reason, attempts, self.bus.retry, self.where, what)
        await _quietly(msg.ack())

    async def _publish_dead(self, msg: Msg, reason: str, attempts: int) -> None:
        kind = msg.subject.rsplit(".", 1)[-1]
        headers = {
            "Nats-Msg-Id": f"{self.name}:{msg.metadata.sequence.stream}",
            "Eventfleet-Reason": " ".join(reason.split())[:512],
            "Eventfleet-Consumer": self.name,
            "Eventfleet-Attempts": str(attempts),
        }
        await self.bus.call(
            f"dead-lettering {msg.subject}",
            self.js.publish(f"{self.bus.subject_prefix}.dead.{kind}", msg.data, headers=headers),
        )


async def _quietly(call: Awaitable[object]) -> None:
    """Acks and naks are fire-and-forget; a lost one only means a redelivery."""
    try:
        await call
    except (nats.errors.Error, OSError) as e:
        log.warning("NATS bus: an ack or nak was not sent: %r", e)


@asynccontextmanager
async def _translated(what: str) -> AsyncIterator[None]:
    try:
        yield
    except nats.js.errors.ServiceUnavailableError as e:
        raise BusUnavailable(f"JetStream is unavailable while {what}: {e}") from e
    except nats.js.errors.APIError as e:
        raise BusError(f"JetStream refused {what}: {e}") from e
    except (nats.errors.Error, TimeoutError, OSError) as e:
        raise BusUnavailable(f"NATS did not answer while {what}: {e!r}") from e
