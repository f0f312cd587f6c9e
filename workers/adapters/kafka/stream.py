"""The Kafka a fleet process talks to outside Faust: its producers, the appender's progress and
whole-topic reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.kafka.pages import KafkaPages
from workers.adapters.kafka.positions import KafkaPositions
from workers.adapters.kafka.probe import KafkaLogProbe
from workers.adapters.kafka.producer import KafkaProducer
from workers.adapters.kafka.progress import KafkaAppendProgress
from workers.adapters.kafka.reader import follow_topic, read_topic, read_window
from workers.adapters.kafka.written import KafkaWrittenLog
from workers.ports import Record, TopicWindow


class KafkaStream:
    """Producers (acks=all, every call bounded) and reads of a topic to its end, on one config."""

    def __init__(self, kafka: KafkaConfig, *, max_event_bytes: int) -> None:
        self.kafka = kafka
        self._max_event_bytes = max_event_bytes

    def producer(self, *, client_id: str) -> KafkaProducer:
        """A new producer (not started: ``start()`` connects it)."""
        return KafkaProducer(self.kafka, client_id=client_id, max_event_bytes=self._max_event_bytes)

    def progress(self, *, topic: str, partitions: int, group_prefix: str) -> KafkaAppendProgress:
        """How far the appender's group has decided ``topic`` (connects on first use)."""
        return KafkaAppendProgress(
            self.kafka, topic=topic, partitions=partitions, group_prefix=group_prefix
        )

    def positions(self, *, fetch_max_wait_ms: int = 50) -> KafkaPositions:
        """Where consumer groups stand and which offsets hold records (connects on first use)."""
        return KafkaPositions(self.kafka, fetch_max_wait_ms=fetch_max_wait_ms)

    def written(self) -> KafkaWrittenLog:
        """What topics already hold, read back by time (connects on first use)."""
        return KafkaWrittenLog(self.kafka)

    def pages(self, *, readers: int = 4) -> KafkaPages:
        """Bounded reads of a topic from positions (``TopicPages``), on at most ``readers``
        consumers kept for reuse (connects on first use)."""
        return KafkaPages(self.kafka, readers=readers, timeout_s=self.kafka.timeout_ms / 1000 * 2)

    def probe(self) -> KafkaLogProbe:
        """The log's word on an unanswered produce (``LogProbe``)."""
        return KafkaLogProbe(self.kafka)

    async def read(self, topic: str, *, timeout_s: float = 30.0) -> list[Record]:
        """Every record of ``topic`` up to its end as first seen (StreamUnavailable if not)."""
        return await read_topic(self.kafka, topic, timeout_s=timeout_s)

    async def read_window(
        self,
        topic: str,
        *,
        limit: int,
        partition: int | None = None,
        before_offset: int | None = None,
        timeout_s: float = 10.0,
    ) -> list[TopicWindow]:
        """The newest ``limit`` records before a cursor per partition, reading only them."""
        return await read_window(
            self.kafka,
            topic,
            limit=limit,
            partition=partition,
            before_offset=before_offset,
            timeout_s=timeout_s,
        )

    def follow(
        self, topic: str, *, after: Mapping[int, int], idle_s: float
    ) -> AsyncIterator[list[Record]]:
        """``topic`` from the offsets ``after`` names, as records arrive (``TopicTail``)."""
        return follow_topic(self.kafka, topic, after=after, idle_s=idle_s)
