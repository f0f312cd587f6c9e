"""The auditor, pointed at a test fleet's database and topics: the one way e2e tests judge results."""

from __future__ import annotations

import contextlib

from snapshot_rules.domain import Domains
from tests.waiting import wait_for
from topics.catalog import TopicNames
from topics.envelope import Event, decode
from topics.errors import InvalidEnvelope
from workers.adapters.kafka import plain, read_topic
from workers.adapters.mongo import (
    MongoEventStore,
    MongoSnapshotStore,
    MongoViewStore,
    connect,
    database,
)
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains import default_domains
from workers.ports import AggregateRef, ViewStore
from workers.roles.ops.audit import Auditor, AuditReport, AuditSources


async def audit(
    stack: EmbeddedStack,
    name: str,
    *,
    domains: Domains | None = None,
    topics: bool = True,
    views: bool = True,
    refs: list[AggregateRef] | None = None,
) -> AuditReport:
    """Audit database ``name`` (and topics prefixed ``name.``) of a fleet made by ``FleetProcess``.

    ``views=False`` for a fleet that runs no projection: its views are not there to compare."""
    domains = domains or default_domains()
    # The judge's reads get 30 s each: its scan of a 17 MB domain (a first batch of 0.25 s on
    # a quiet machine) outlasted 5 s in a full clean-clone run.
    client = connect(stack.urls.mongo_url, timeout_ms=30_000)
    try:
        db = database(client, name)
        stores: dict[str, ViewStore] = {
            p.name: MongoViewStore(db, p.collection) for p in domains.projections().values()
        }
        kafka = plain(stack.urls.kafka_url)

        async def read(topic: str) -> list[Event]:
            events = []
            for record in await read_topic(kafka, topic):
                try:
                    events.append(decode(record.value))
                except InvalidEnvelope:
                    continue
            return events

        sources = AuditSources(
            events=MongoEventStore(db),
            snapshots=MongoSnapshotStore(db),
            views=stores if views else {},
            read_topic=read if topics else None,
            topic_name=TopicNames(f"{name}.").name,
        )
        return await Auditor(domains, sources).audit(refs=refs or ())
    finally:
        await client.close()


async def settled_audit(
    stack: EmbeddedStack, name: str, *, domains: Domains | None = None, timeout_s: float = 60
) -> AuditReport:
    """``audit``, once no downstream topic misses a stored event (or after ``timeout_s``).

    The forwarder runs behind the store, and after a fault further behind: it reads back what
    its topics hold before it produces again. A fleet's answers can all be in while copies are
    still on their way, so the findings that lag can explain are waited for, bounded; every
    other finding, and one that outlasts the bound, is reported as found."""
    report: AuditReport | None = None

    async def caught_up() -> bool:
        nonlocal report
        report = await audit(stack, name, domains=domains)
        return not any(f.kind == "missing_downstream" for f in report.findings)

    with contextlib.suppress(AssertionError):  # the report shows what never arrived
        await wait_for(caught_up, timeout_s=timeout_s, what="the downstream topics", interval_s=0.2)
    assert report is not None
    return report


def errors(report: AuditReport) -> list[str]:
    """The report's errors as sentences (empty: every history, snapshot and topic agrees)."""
    return [
        f"{f.kind} {f.aggregate_type} {f.aggregate_id}: {f.detail}"
        for f in report.findings
        if f.error
    ]
