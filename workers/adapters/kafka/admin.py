"""Topic administration: create the catalog's missing topics (when told) and report mismatches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from topics.catalog import TopicSpec
from topics.errors import StreamUnavailable
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicReport:
    """What ``ensure`` found or did for one topic."""

    name: str
    status: str  # created, ok, mismatch, missing
    detail: str = ""


@asynccontextmanager
async def admin_client(kafka: KafkaConfig) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, every call of the caller bounded; Kafka errors become ours."""
    timeout_s = kafka.timeout_ms / 1000
    admin = AIOKafkaAdminClient(**kafka.client_kwargs(), client_id="eventfleet-admin")
    try:
        try:
            async with asyncio.timeout(timeout_s * 2):
                await admin.start()
        except Exception as e:  # e.g. KeyError from aiokafka on a refused SCRAM login
            raise KafkaError(f"{type(e).__name__}: {e}") from e
        yield admin
    except (TimeoutError, KafkaError, OSError) as e:
        log.warning("Kafka admin call to %s failed: %r", kafka.describe(), e)
        raise StreamUnavailable(
            f"the Kafka admin API at {kafka.describe()} did not answer in time "
            f"({type(e).__name__}); check that the brokers are up and the security settings "
            "match theirs."
        ) from e
    finally:
        await close_quietly(admin.close, timeout_s=timeout_s, what="admin client")


async def ensure_topics(
    kafka: KafkaConfig, specs: Sequence[TopicSpec], *, create: bool = True
) -> list[TopicReport]:
    """Create missing topics (only if ``create``); report existing ones whose partitions differ."""
    timeout_s = kafka.timeout_ms / 1000
    async with admin_client(kafka) as admin:
        async with asyncio.timeout(timeout_s):
            existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        reports = [TopicReport(spec.name, "created" if create else "missing") for spec in missing]
        if missing and create:
            new = [
                NewTopic(s.name, s.partitions, s.replication, topic_configs=s.configs())
                for s in missing
            ]
            async with asyncio.timeout(timeout_s):
                response = await admin.create_topics(new)
            _raise_create_errors(response)
        present = [spec for spec in specs if spec.name in existing]
        if present:
            async with asyncio.timeout(timeout_s):
                described = await admin.describe_topics([s.name for s in present])
            partitions = {d["topic"]: len(d.get("partitions") or []) for d in described}
            for spec in present:
                found = partitions.get(spec.name, 0)
                if found != spec.partitions:
                    detail = f"has {found} partitions, the catalog says {spec.partitions}"
                    reports.append(TopicReport(spec.name, "mismatch", detail))
                else:
                    reports.append(TopicReport(spec.name, "ok"))
        return reports


def _raise_create_errors(response: object) -> None:
    """CreateTopics answers per topic: 'already exists' is fine (another worker won the race)."""
    for entry in getattr(response, "topic_errors", ()):
        topic, code = entry[0], entry[1]
        if code == 0:
            continue
        error = for_code(code)
        if error is TopicAlreadyExistsError:
            continue
        raise StreamUnavailable(
            f"Kafka refused to create topic {topic}: {error.__name__}; check the broker's "
            "limits (replication factor, min.insync.replicas) and the principal's CreateTopics "
            "permission."
        )
