"""The ``lag`` role: every consumer group's lag, read from the brokers and exported.

It runs apart from the groups it measures (``eventfleet worker --role lag``, one replica),
so the lag series live on when every pod of a group is gone, and the alert rules can tell
"lag is high" from "nobody measures lag" (``absent()`` on its series).
"""

from __future__ import annotations

import asyncio
import logging
import time

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames
from topics.errors import Unavailable
from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.kafka.lag import KafkaLagReader, PartitionLag
from workers.metrics import Metrics, create_metrics
from workers.runtime.role_names import LAG_ROLE as LAG_ROLE  # its one definition
from workers.runtime.settings import Settings

log = logging.getLogger(__name__)


def measured_groups(settings: Settings, domains: Domains) -> dict[str, list[str]]:
    """Every consumer group the fleet's roles join, with the topics each one reads."""
    names = TopicNames(settings.topic_prefix)
    group = settings.group_id
    groups = {
        f"{group}-commands": [names.commands],
        f"{group}-appender": [names.events],
        f"{group}-snapshotter": [names.stored],
        f"{group}-forwarder": [names.stored],
        f"{group}-bridge": [names.stored],
        f"{group}-pm": [names.stored],
        f"{group}-all": [names.commands, names.events, names.stored],
    }
    for projection in domains.projections():
        groups[f"{group}-projection-{projection}"] = [names.stored]
    return groups


class LagExporter:
    """Reads group lag every ``interval_s`` into ``eventfleet_group_lag_events``.

    Besides the named ``groups``, every broker group whose id starts with ``group_prefix`` is
    measured on the topics under ``topic_prefix`` it has committed: ``eventfleet dev``'s
    ``<group_id>-dev``, a role added later, a group renamed by a deployment.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        metrics: Metrics,
        groups: dict[str, list[str]],
        interval_s: float,
        *,
        group_prefix: str | None = None,
        topic_prefix: str = "",
    ) -> None:
        self._reader = KafkaLagReader(kafka)
        self._metrics = metrics
        self._groups = groups
        self._group_prefix = group_prefix
        self._topic_prefix = topic_prefix
        self._interval_s = interval_s
        self._series: set[tuple[str, str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self.last_error = ""
        self.last: list[PartitionLag] = []
        """The partitions of the last read (the console's groups page shows them)."""
        self.last_at: float | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="eventfleet-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._reader.stop()

    async def read_once(self) -> None:
        """One read of every group; series of partitions no longer found are removed."""
        lags = await self.read()
        self.last, self.last_at = lags, time.time()
        gauge = self._metrics.group_lag
        current = set()
        for lag in lags:
            labels = (lag.group, lag.topic, str(lag.partition))
            gauge.labels(*labels).set(lag.lag)
            current.add(labels)
        for labels in self._series - current:
            gauge.remove(*labels)
        self._series = current
        self._metrics.lag_read_time.set(time.time())

    async def connect(self) -> None:
        await self._reader.start()

    async def read(self) -> list[PartitionLag]:
        """Every measured group's partitions, read now (nothing exported)."""
        return await self._reader.read(self._groups, discovered=await self._discovered())

    async def _discovered(self) -> dict[str, list[str]]:
        if self._group_prefix is None:
            return {}
        found = await self._reader.groups(prefix=self._group_prefix)
        unnamed = [group for group in found if group not in self._groups]
        if not unnamed:
            return {}
        topics = await self._reader.topics(prefix=self._topic_prefix)
        return {group: topics for group in unnamed}

    async def _run(self) -> None:
        started = False
        while True:
            try:
                if not started:
                    await self.connect()
                    started = True
                await self.read_once()
                self.last_error = ""
            except Unavailable as e:
                # The timestamp stops moving: the staleness alert fires, not a false "no lag".
                if str(e) != self.last_error:
                    log.warning("%s", e)
                self.last_error = str(e)
            await asyncio.sleep(self._interval_s)


def fleet_lag(
    kafka: KafkaConfig, metrics: Metrics, settings: Settings, domains: Domains
) -> LagExporter:
    """The exporter of every group the fleet's roles join (``measured_groups``) and of every
    other group under its ``group_id``, as the settings name them."""
    return LagExporter(
        kafka,
        metrics,
        measured_groups(settings, domains),
        settings.lag_interval_s,
        group_prefix=f"{settings.group_id}-",
        topic_prefix=settings.topic_prefix,
    )


async def read_lag_once(
    kafka: KafkaConfig, settings: Settings, domains: Domains
) -> list[PartitionLag]:
    """One read of every group the lag role would measure, for a process that does not run it."""
    # A registry of its own: nothing is exported.
    exporter = fleet_lag(kafka, create_metrics(), settings, domains)
    try:
        await exporter.connect()
        return await exporter.read()
    finally:
        await exporter.stop()
