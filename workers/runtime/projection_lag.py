"""``eventfleet_projection_lag_events``: how far a projection's agent is behind, per partition."""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import TP

from workers.metrics import Metrics
from workers.ports import Record


class ProjectionLag:
    """``projection_lag`` per partition: high-water mark minus the next offset to apply."""

    def __init__(self, app: faust.App, metrics: Metrics, projection: str) -> None:
        self._app = app
        self._gauge = metrics.projection_lag
        self._projection = projection
        self._partitions: set[int] = set()

    def after(self, records: Sequence[Record]) -> None:
        """Record the lag on every partition of an applied batch; forget revoked partitions."""
        last: dict[TP, int] = {}
        for record in records:
            tp = TP(record.topic, record.partition)
            last[tp] = max(last.get(tp, -1), record.offset)
        consumer = self._app.consumer
        try:
            assigned = {tp.partition for tp in consumer.assignment()}
            for tp, offset in last.items():
                lag = max(0, (consumer.highwater(tp) or 0) - offset - 1)
                self._gauge.labels(self._projection, str(tp.partition)).set(lag)
                self._partitions.add(tp.partition)
        except Exception:  # mid-rebalance: the next batch records it
            return
        for partition in self._partitions - assigned:
            self._gauge.remove(self._projection, str(partition))
        self._partitions &= assigned
