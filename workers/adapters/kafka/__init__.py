"""Kafka adapters: the bounded acks=all producer and topic administration."""

from __future__ import annotations

from workers.adapters.kafka.admin import (
    TopicReport,
    ensure_topics,
    fleet_catalog,
)
from workers.adapters.kafka.producer import (
    KafkaProducer,
)
from workers.adapters.kafka.reader import read_topic

__all__ = [
    "KafkaProducer",
    "TopicReport",
    "ensure_topics",
    "fleet_catalog",
    "read_topic",
]
