"""``eventfleet audit`` and the in-fleet audit loop: the auditor wired to the fleet's stores."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

from topics.envelope import Event, decode
from topics.errors import InvalidEnvelope, Unavailable
from workers.ports import AggregateRef, ViewStore
from workers.roles.ops.audit import Auditor, AuditReport, AuditSources
from workers.runtime.compose import Runtime

log = logging.getLogger(__name__)


async def auditor(
    runtime: Runtime, *, topics: bool = True, marks: bool = True, mark_bound_s: float = 2.0
) -> Auditor:
    """An auditor over every store of ``runtime``; topics and marks only when asked."""
    views: dict[str, ViewStore] = {
        name: runtime.views(projection.collection)
        for name, projection in runtime.domains.projections().items()
    }

    async def read(topic: str) -> list[Event]:
        events = []
        for record in await runtime.adapters.stream.read(topic):
            try:
                events.append(decode(record.value))
            except InvalidEnvelope:
                continue  # poison on a topic is the dead-letter queue's business
        return events

    sources = AuditSources(
        events=runtime.events,
        snapshots=runtime.snapshots,
        views=views,
        marks=(await runtime.marks()).marker if marks else None,
        read_topic=read if topics else None,
        topic_name=runtime.names.name,
        parked=runtime.stores.parked,
    )
    return Auditor(runtime.domains, sources, mark_bound_s=mark_bound_s)


class AuditLoop:
    """Audits a sample of recently stored aggregates every ``interval_s``; counts findings."""

    def __init__(self, runtime: Runtime, *, interval_s: float, sample: int = 50) -> None:
        self._runtime = runtime
        self._interval_s = interval_s
        self._sample = sample
        self._recent: dict[AggregateRef, None] = {}

    def saw(self, refs: Sequence[AggregateRef]) -> None:
        """Aggregates just stored (the candidates of the next round)."""
        for ref in refs:
            self._recent[ref] = None
        while len(self._recent) > 10 * self._sample:
            self._recent.pop(next(iter(self._recent)))

    async def run(self) -> None:
        # Recently stored aggregates: a view may trail the store for a while under load.
        checker = await auditor(self._runtime, topics=False, marks=False, mark_bound_s=30.0)
        metrics = self._runtime.metrics
        while True:
            await asyncio.sleep(self._interval_s)
            refs = list(self._recent)
            self._recent.clear()
            if not refs:
                continue
            chosen = random.sample(refs, min(self._sample, len(refs)))
            try:
                report: AuditReport = await checker.audit(refs=chosen)
            except Unavailable as e:
                log.warning("audit round skipped: %s", e)
                continue
            metrics.audited.inc(report.aggregates)
            for finding in report.findings:
                metrics.audit_findings.labels(finding.kind).inc()
                log.error(
                    "audit: %s %s %s: %s",
                    finding.kind,
                    finding.aggregate_type,
                    finding.aggregate_id,
                    finding.detail,
                )
