"""Topic administration: create the catalog's missing topics and report mismatched ones."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames, TopicSpec, catalog
from topics.errors import StreamUnavailable
from workers.runtime.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicReport:
    """What ``ensure`` found or did for one topic."""

    name: str
    status: str  # created, ok, mismatch
    detail: str = ""


def fleet_catalog(settings: Settings, domains: Domains) -> list[TopicSpec]:
    return catalog(
        TopicNames(settings.topic_prefix),
        partitions=settings.partitions,
        replication=settings.replication,
        downstream=domains.downstream_topics(),
    )


async def ensure_topics(settings: Settings, specs: Sequence[TopicSpec]) -> list[TopicReport]:
    """Create missing topics; report existing ones whose partition count differs."""
    timeout_s = settings.kafka_timeout_ms / 1000
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=settings.kafka_timeout_ms
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s * 2)
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout_s))
        missing = [spec for spec in specs if spec.name not in existing]
        reports = [TopicReport(spec.name, "created") for spec in missing]
        if missing:
            new = [
                NewTopic(s.name, s.partitions, s.replication, topic_configs=s.configs())
                for s in missing
            ]
            try:
                await asyncio.wait_for(admin.create_topics(new), timeout_s)
            except TopicAlreadyExistsError:
                pass  # another worker created them meanwhile
        present = [spec for spec in specs if spec.name in existing]
        if present:
            described = await asyncio.wait_for(
                admin.describe_topics([s.name for s in present]), timeout_s
            )
            partitions = {d["topic"]: len(d.get("partitions") or []) for d in described}
            for spec in present:
                found = partitions.get(spec.name, 0)
                if found != spec.partitions:
                    detail = f"has {found} partitions, the catalog says {spec.partitions}"
                    reports.append(TopicReport(spec.name, "mismatch", detail))
                else:
                    reports.append(TopicReport(spec.name, "ok"))
        return reports
    except (TimeoutError, KafkaError, OSError) as e:
        raise StreamUnavailable(f"Kafka admin at {settings.kafka_url} did not answer: {e!r}") from e
    finally:
        try:
            await asyncio.wait_for(admin.close(), timeout_s)
        except (TimeoutError, KafkaError, OSError):
            pass
