"""Kafka producing and topic administration with every call bounded (aiokafka#1101)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from topics.errors import StreamOutcomeUnknown, StreamUnavailable
from workers.adapters.kafka.config import KafkaConfig
from workers.ports import Delivery, Outgoing
from workers.secrets import redact

log = logging.getLogger(__name__)


class KafkaProducer:
    """One acks=all producer per process; a send either is acknowledged or raises in time."""

    def __init__(
        self,
        kafka: KafkaConfig,
        *,
        client_id: str = "eventfleet",
        max_event_bytes: int = 1024 * 1024,
    ) -> None:
        self._kafka = kafka
        self._timeout_s = kafka.timeout_ms / 1000
        # A record not acknowledged within request_timeout_ms fails inside aiokafka, but it
        # may already sit in a stalled broker's socket and be appended when it resumes: once
        # handed over, a failure is an unknown outcome (StreamOutcomeUnknown), never "not sent".
        self._producer = AIOKafkaProducer(
            **kafka.client_kwargs(),
            client_id=client_id,
            acks="all",
            enable_idempotence=kafka.idempotence,
            linger_ms=0,
            max_request_size=max(max_event_bytes * 2, 1024 * 1024),
        )
        self._started = False

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                await self._producer.start()
        except Exception as e:  # aiokafka also raises KeyError on a refused SCRAM login
            # (the server's "e=unknown-user" final message); every failure here means the same.
            await self.stop()
            log.warning("Kafka producer start failed: %s", redact(repr(e)))
            raise StreamUnavailable(
                f"the Kafka producer could not connect to {self._kafka.describe()}; "
                "check that the brokers answer and the security settings match theirs."
            ) from e
        self._started = True

    async def stop(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._producer.stop()
        except (TimeoutError, KafkaError, OSError):
            pass  # stopping must not hang while Kafka is down; unsent records fail
        self._started = False

    async def ping(self) -> None:
        """One metadata round trip to the brokers (the caller bounds it)."""
        if not self._started:
            raise StreamUnavailable("the Kafka producer is not running")
        await self._producer.client.fetch_all_metadata()

    async def send(
        self, topic: str, message: Outgoing, *, partition: int | None = None
    ) -> Delivery:
        """Produce one record: StreamUnavailable if it was not handed over, else the ack or
        StreamOutcomeUnknown. One timeout bounds both steps (the hot path of every command)."""
        if not self._started:
            raise StreamUnavailable("the Kafka producer is not running.")
        handed = False
        try:
            async with asyncio.timeout(self._timeout_s * 1.5):
                if partition is not None:
                    await self._check_partition(topic, partition)
                future = await self._producer.send(
                    topic,
                    value=message.value,
                    key=message.key,
                    headers=list(message.headers),
                    partition=partition,
                )
                handed = True
                # Shielded: a timeout must not cancel the record inside aiokafka.
                metadata = await asyncio.shield(future)
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._failure(topic, e, handed=handed) from e
        return Delivery(topic=metadata.topic, partition=metadata.partition, offset=metadata.offset)

    async def send_many(self, topic: str, messages: Sequence[Outgoing]) -> list[Delivery]:
        """Produce many records, keeping their order per key, and wait for every ack.

        One timeout bounds the whole batch. StreamUnavailable if none was handed over;
        StreamOutcomeUnknown once any was (it may be appended).
        """
        if not self._started:
            raise StreamUnavailable("the Kafka producer is not running.")
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self._timeout_s * 1.5):
                for message in messages:
                    futures.append(
                        await self._producer.send(
                            topic,
                            value=message.value,
                            key=message.key,
                            headers=list(message.headers),
                        )
                    )
                # Shielded: a timeout must not cancel records inside aiokafka.
                results = await asyncio.shield(asyncio.gather(*futures))
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._failure(topic, e, handed=bool(futures)) from e
        return [Delivery(r.topic, r.partition, r.offset) for r in results]

    def _failure(self, topic: str, error: BaseException, *, handed: bool) -> StreamUnavailable:
        log.debug("Kafka error on %s: %r", topic, error)
        if handed:
            return StreamOutcomeUnknown(
                f"Kafka did not acknowledge a record for {topic} within "
                f"{self._timeout_s * 1.5:g} s; it may still be appended."
            )
        return StreamUnavailable(f"Kafka did not take a record for {topic}; nothing was sent.")

    async def _check_partition(self, topic: str, partition: int) -> None:
        # aiokafka only asserts this (gone under python -O); say it in a sentence instead.
        known = await self._producer.partitions_for(topic)
        if partition not in known:
            raise ValueError(
                f"{topic} has partitions 0 to {len(known) - 1}; there is no partition {partition}"
            )

