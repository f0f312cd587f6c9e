"""Kafka adapters: connection config, the bounded acks=all producer, topic admin, group lag."""

from __future__ import annotations

from workers.adapters.kafka.admin import TopicReport, admin_client, ensure_topics
from workers.adapters.kafka.config import KafkaConfig, plain
from workers.adapters.kafka.lag import KafkaLagReader, PartitionLag
from workers.adapters.kafka.producer import KafkaProducer
from workers.adapters.kafka.progress import KafkaAppendProgress
from workers.adapters.kafka.reader import read_topic

__all__ = [
    "KafkaAppendProgress",
    "KafkaConfig",
    "KafkaLagReader",
    "KafkaProducer",
    "PartitionLag",
    "TopicReport",
    "admin_client",
    "ensure_topics",
    "plain",
    "read_topic",
]
