"""The embedded stack and a runtime on it, for the scripts under ``tests/bench``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from workers.devtools.dev import dev_settings, embedded_stack, run_directory
from workers.devtools.dev_keys import dev_master_key
from workers.devtools.embedded import EmbeddedStack, free_port
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings


@dataclass(frozen=True, slots=True)
class Bench:
    """A started stack, a runtime of no role on it, and the run's id (its names hold it)."""

    stack: EmbeddedStack
    runtime: Runtime
    run: str

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


@asynccontextmanager
async def bench_stack(prefix: str, **defaults: object) -> AsyncIterator[Bench]:
    """The embedded stack in a run directory of its own, names ``<prefix>-<run>``; ``defaults``
    are settings the environment may still override. Stopped, and the directory gone, after."""
    run = uuid.uuid4().hex[:6]
    settings = dev_settings(Settings.from_env(), port=free_port()).with_defaults(
        topic_prefix=f"{prefix}-{run}.", mongo_database=f"{prefix}_{run}",
        group_id=f"{prefix}-{run}", **defaults,
    )  # fmt: skip
    async with run_directory() as directory:
        settings = dev_master_key(directory, settings)
        stack = embedded_stack(settings)
        urls = await stack.start()
        try:
            settings = settings.with_defaults(
                kafka_url=urls.kafka_url, mongo_url=urls.mongo_url, redis_url=urls.redis_url,
                kafka_idempotence="kafka" not in stack.started and settings.kafka_idempotence,
            )  # fmt: skip
            runtime = await Runtime.start(settings, roles=())
            try:
                yield Bench(stack, runtime, run)
            finally:
                await runtime.stop()
        finally:
            await stack.stop()
