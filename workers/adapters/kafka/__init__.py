"""Kafka adapters: connection config, the bounded acks=all producer, topic admin and reader,
group lag and positions, and the event bus on events.stored; driver errors are translated here,
once."""

from __future__ import annotations

from workers.adapters.kafka.admin import TopicReport, ensure_topics
from workers.adapters.kafka.bus import KafkaBusOptions, KafkaEventBus
from workers.adapters.kafka.config import KafkaConfig, plain
from workers.adapters.kafka.errors import escaped
from workers.adapters.kafka.lag import KafkaLagReader, PartitionLag
from workers.adapters.kafka.positions import KafkaPositions
from workers.adapters.kafka.producer import KafkaProducer
from workers.adapters.kafka.progress import KafkaAppendProgress
from workers.adapters.kafka.reader import read_topic
from workers.adapters.kafka.stream import KafkaStream

__all__ = [
    "KafkaAppendProgress",
    "KafkaBusOptions",
    "KafkaConfig",
    "KafkaEventBus",
    "KafkaLagReader",
    "KafkaPositions",
    "KafkaProducer",
    "KafkaStream",
    "PartitionLag",
    "TopicReport",
    "ensure_topics",
    "escaped",
    "plain",
    "read_topic",
]
