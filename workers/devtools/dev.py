"""``eventfleet dev``: the embedded stack plus every role in one process, and what a newcomer needs."""

from __future__ import annotations

import logging
import sys
from typing import Any

from workers.devtools.embedded import EmbeddedStack
from workers.runtime.compose import ROLES, Runtime
from workers.runtime.fleet import Fleet
from workers.runtime.serve import serve
from workers.runtime.settings import Settings

log = logging.getLogger(__name__)


def dev_settings(settings: Settings, *, port: int) -> Settings:
    """Latency-friendly defaults for the embedded broker (the environment still wins)."""
    return settings.with_defaults(
        http_port=port,
        kafka_fetch_max_wait_ms=10,
        kafka_session_timeout_ms=3000,
        partitions=4,
        topics_auto_create=True,  # the embedded broker starts empty
    )


def embedded_stack(settings: Settings) -> EmbeddedStack:
    given = settings.explicit
    return EmbeddedStack(
        kafka_url=settings.kafka_url if "kafka_url" in given else None,
        mongo_url=settings.mongo_url if "mongo_url" in given else None,
        redis_url=settings.redis_url if "redis_url" in given else None,
    )


def banner(settings: Settings, stack: EmbeddedStack) -> str:
    api = f"http://{settings.http_host}:{settings.http_port}"
    started = ", ".join(stack.started) or "none (all services from the environment)"
    return f"""
eventfleet dev is running (Ctrl-C stops it and everything it started).

  API       {api}/v1/{{aggregate_type}}/{{aggregate_id}}/events
  health    {api}/healthz   ready: {api}/readyz
  metrics   {api}/metrics
  kafka     {settings.masked("kafka_url")}   topics: {settings.topic_prefix}events, {settings.topic_prefix}events.stored, {settings.topic_prefix}orders, ...
  mongodb   {settings.masked("mongo_url")}   database: {settings.mongo_database}
  redis     {settings.masked("redis_url")}
  embedded  {started}

Try it:
  curl -s -XPOST {api}/v1/order/o-1/events -d '{{"type": "OrderPlaced", "data": {{"items": [{{"sku": "tea", "qty": 2, "price": 3.5}}]}}}}'
  curl -s -XPOST {api}/v1/account/a-1/events -d '{{"type": "AccountOpened", "data": {{"owner": "ada"}}}}'
  curl -s {api}/v1/order/o-1/state
"""


async def dev(settings: Settings, *, port: int, demo: bool = False, demo_scale: float = 1.0) -> int:
    settings = dev_settings(settings, port=port)
    stack = embedded_stack(settings)
    try:
        urls = await stack.start()
        kafka_embedded = "kafka" in stack.started
        settings = settings.with_defaults(
            kafka_url=urls.kafka_url,
            mongo_url=urls.mongo_url,
            redis_url=urls.redis_url,
            kafka_idempotence=not kafka_embedded and settings.kafka_idempotence,
        )
        runtime = await Runtime.start(settings)

        async def started(fleet: Fleet) -> None:
            print(banner(settings, stack), file=sys.stdout, flush=True)
            if demo:
                from workers.devtools.demo import run_demo

                fleet.spawn(_demo_then_stop(fleet, run_demo, demo_scale))

        return await serve(runtime, ROLES, app_id=f"{settings.group_id}-dev", on_started=started)
    finally:
        await stack.stop()


async def _demo_then_stop(fleet: Fleet, run_demo: Any, scale: float) -> None:
    try:
        ok = await run_demo(fleet, scale=scale)
    except Exception:
        log.exception("the demo failed")
        ok = False
    fleet.exit_code = 0 if ok else 1
    fleet.stop()
