"""Kafka's errors as ours, for one that reached the top untranslated (a tool's own client)."""

from __future__ import annotations

from aiokafka.errors import KafkaError

from topics.errors import StreamUnavailable


def escaped(error: BaseException) -> StreamUnavailable | None:
    """A driver error no adapter translated, as ours naming the fix; None if not Kafka's."""
    if not isinstance(error, KafkaError):
        return None
    return StreamUnavailable(
        f"Kafka failed: {type(error).__name__}: {error}; check EVENTFLEET_KAFKA_URL and that the "
        "broker runs (against `eventfleet dev`, paste the export block it prints)"
    )
