"""What the forwarder's role tests share: the topic names they forward on (``NAMES``) and
``as_consumed``, events paired with the ``events.stored`` records they came in."""

from __future__ import annotations

from collections.abc import Sequence

from topics.catalog import TopicNames
from topics.envelope import Event, encode, kafka_headers
from workers.ports import Record

NAMES = TopicNames("t.")


def as_consumed(events: Sequence[Event], *, first_offset: int = 0) -> list[tuple[Event, Record]]:
    """Each event with the events.stored record it came in (extra headers, as Kafka keeps them)."""
    return [
        (
            e,
            Record(
                NAMES.stored,
                0,
                first_offset + n,
                e.key,
                encode(e),
                [*kafka_headers(e), ("traceparent", b"00-abc-01")],
            ),
        )
        for n, e in enumerate(events)
    ]
