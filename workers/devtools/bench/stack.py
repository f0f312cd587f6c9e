"""The stack every benchmark runs on: the embedded services (or those the environment names),
in a run directory of its own, and a runtime of no role on them; used by ``eventfleet bench``
and the scripts under ``tests/bench``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from workers.devtools.bench.progress import step
from workers.devtools.dev import delete_keys, dev_settings, embedded_stack, run_directory
from workers.devtools.dev_keys import dev_master_key
from workers.devtools.embedded import EmbeddedStack, free_port
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings


def bench_settings(settings: Settings, run: str, *, prefix: str = "bench") -> Settings:
    """``settings`` for a dev stack, every name of the run's own (``<prefix>-<run>``), on 8
    partitions unless the environment says otherwise."""
    return dev_settings(settings, port=free_port()).with_defaults(
        topic_prefix=f"{prefix}-{run}.",
        mongo_database=f"{prefix}_{run}",
        group_id=f"{prefix}-{run}",
        partitions=8,
    )


@dataclass(frozen=True, slots=True)
class Bench:
    """A started stack and a runtime of no role on it."""

    stack: EmbeddedStack
    runtime: Runtime

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


@asynccontextmanager
async def bench_stack(settings: Settings) -> AsyncIterator[Bench]:
    """The stack for ``settings`` (from ``bench_settings``) in a run directory of its own.

    After: the runtime and the stack stopped, every key under the run's topic prefix deleted
    from a Redis the bench was lent, the directory gone."""
    async with run_directory() as directory:  # the stack's data, the workers' and their logs
        settings = dev_master_key(directory, settings)
        stack = embedded_stack(settings)
        step("starting the embedded stack")
        try:
            urls = await stack.start()
            settings = settings.with_defaults(
                kafka_url=urls.kafka_url,
                mongo_url=urls.mongo_url,
                redis_url=urls.redis_url,
                kafka_idempotence="kafka" not in stack.started and settings.kafka_idempotence,
                # The bench's own store calls (setup writes, the state rows' reads) are not
                # what is measured: on a 2-core machine, a store busy with 1000 subscribers'
                # first reads took over the default 5 s to take a 1000-event setup write, and
                # the live rows ended there. The workers keep the default (not in worker_env).
                mongo_timeout_ms=30_000,
            )
            runtime = await Runtime.start(settings, roles=())
            try:
                yield Bench(stack, runtime)
            finally:
                step("stopping")
                await runtime.stop()
                if "redis" not in stack.started:
                    await forget_keys(settings, settings.topic_prefix)
        finally:
            await stack.stop()


async def forget_keys(settings: Settings, prefix: str) -> None:
    """Delete every key under ``prefix`` from a Redis the bench was lent."""
    deleted = await delete_keys(settings, prefix)
    step(f"deleted {deleted} key(s) under {prefix} from {settings.masked('redis_url')}")
