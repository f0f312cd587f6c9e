"""``eventfleet bench``: every path next to the strongest baseline doing the same work, in one run.

Each row is measured with its baseline on the same embedded stack, interleaved where it can
be, and printed as a ratio with the server's CPU per request or event: absolute rates on a
shared 2-core machine and on SecantusDB (a surrogate for mongod) mean little alone.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import orjson

from topics.catalog import TopicSpec
from workers.adapters.kafka import ensure_topics
from workers.devtools.bench.append import Point, bench_append, bench_scale
from workers.devtools.bench.capacity import TARGETS, Costs, assumed, measured, plan, render
from workers.devtools.bench.commands import bench_http_commands
from workers.devtools.bench.fairness import Fairness, bench_fairness
from workers.devtools.bench.global_read import bench_global
from workers.devtools.bench.live import bench_live
from workers.devtools.bench.measure import Table, load_average
from workers.devtools.bench.plot import plot_target, scale_svg
from workers.devtools.bench.pm import bench_pm
from workers.devtools.bench.progress import step
from workers.devtools.bench.stack import Bench, bench_settings, bench_stack
from workers.devtools.bench.state import bench_state
from workers.devtools.bench.wrk import WrkMissing, wrk_path
from workers.runtime.compose import Runtime
from workers.runtime.connections import fleet_catalog
from workers.runtime.settings import Settings, env_name

__all__ = ["PATHS", "bench", "forget_keys"]

PATHS = ("commands", "append", "state", "scale", "live", "fairness", "pm", "global", "all")
_WORKER_SETTINGS = (
    "kafka_url",
    "mongo_url",
    "mongo_database",
    "redis_url",
    "topic_prefix",
    "group_id",
    "kafka_idempotence",
    "kafka_session_timeout_ms",
    "partitions",
    "batch_size",
    "batch_within_ms",
    "master_key_file",
    "domains",
)


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process on the bench's stack, quiet and without audits.

    Workers keep their production fetch wait (100 ms), not dev's 10 ms: polling the
    commands topic every 10 ms costs a commands process about a tenth of a core.
    """
    env = {
        env_name(name): str(getattr(settings, name)).lower()
        if isinstance(getattr(settings, name), bool)
        else str(getattr(settings, name))
        for name in _WORKER_SETTINGS
    }
    # TMPDIR: the workers' Faust data directories go into the bench's run directory.
    # AUTH none: the baselines check no identity either (a token check is its own cost, not
    # measured here); the bench's workers listen on loopback only. A write budget no row
    # meets: every write still draws on it (its cost is measured), none is refused.
    return env | {
        "EVENTFLEET_LOG_LEVEL": "warning",
        "EVENTFLEET_AUDIT_INTERVAL_S": "0",
        "EVENTFLEET_AUTH": "none",
        "TMPDIR": tempfile.gettempdir(),
        "EVENTFLEET_WRITE_BUDGET_PER_S": "10000000",
        "EVENTFLEET_WRITE_BUDGET_BURST": "10000000",
    }


async def bench(
    settings: Settings,
    *,
    path: str,
    events: int,
    as_json: bool = False,
    rounds: int = 3,
    plot: str = "eventfleet-bench-scale.svg",
) -> int:
    """Run the benchmarks of ``path`` on the embedded stack (or the services in the environment).

    Its own Redis unless EVENTFLEET_REDIS_URL names one; there, every key it wrote (all under
    ``bench-<run>.``) is deleted at the end.
    """
    settings = bench_settings(settings, uuid.uuid4().hex[:6])
    if path in ("scale", "all"):  # resolved and checked before anything starts
        plot = str(plot_target(plot))

    def emit(
        table: Table | Capacity | Fairness,
    ) -> None:  # as soon as measured: a later failure loses none
        if isinstance(table, Capacity):
            print(orjson.dumps(table.as_dict()).decode() if as_json else table.text, flush=True)
            return
        print(
            orjson.dumps({"table": table.title, "rows": table.as_dicts()}).decode()
            if as_json
            else table.render(),
            flush=True,
        )

    if path in ("commands", "fairness", "all"):
        try:
            wrk_path()
        except WrkMissing as e:
            print(e, file=sys.stderr, flush=True)
            return 1
    step(load_average())
    async with bench_stack(settings) as started:
        await _measure(started, path=path, events=events, rounds=rounds, emit=emit, plot=plot)
    step("done")
    return 0


async def _measure(
    started: Bench,
    *,
    path: str,
    events: int,
    rounds: int,
    emit: Callable[[Table | Capacity | Fairness], None],
    plot: str,
) -> None:
    stack, runtime, settings = started.stack, started.runtime, started.settings
    step("creating the topics")
    baseline_topic = f"{settings.topic_prefix}bench-baseline"
    # The baseline's topic has as many partitions as ours: the same produce work.
    same = TopicSpec(baseline_topic, settings.partitions, settings.replication)
    await ensure_topics(runtime.kafka, [*fleet_catalog(settings, runtime.domains), same])
    env = worker_env(settings)
    commands_cpu_ms: float | None = None
    if path in ("commands", "all"):
        commands = await bench_http_commands(
            env,
            kafka=",".join(settings.kafka_bootstrap),
            redis=settings.redis_url,
            topic=baseline_topic,
            events_topic=runtime.names.events,
            count=events,
            rounds=rounds,
        )
        emit(commands)
        commands_cpu_ms = commands.rows[0].median_cpu_ms
    if path in ("fairness", "all"):
        emit(await bench_fairness(env, settings, count=events, rounds=rounds))
    if path in ("append", "scale", "all"):
        scale = path in ("scale", "all")
        # Topics of its own: the command rows left their events on the fleet's topic.
        appending, appending_env = await _own_topics(settings, runtime, "append")
        emit(await bench_append(appending, appending_env, events, rounds=rounds))
        if scale:
            fresh = partial(_own_topics, appending, runtime)
            table, points = await bench_scale(appending, fresh, events)
            emit(table)
            emit(_capacity(points, commands_cpu_ms, plot))
    if path in ("global", "all"):
        step(f"global read: {events} events per row, with and without readers")
        # Topics of their own too, so the rows before leave nothing for its appender to store.
        reading, reading_env = await _own_topics(settings, runtime, "global")
        emit(await bench_global(reading, reading_env, runtime, events, rounds=rounds))
    if path in ("live", "all"):
        messages = min(events, 10_000)
        step(f"live: 1000 subscribers over 100 rooms, {messages} messages per row")
        # Topics of its own too: its fleet's appender would first store every event the
        # command rows left on the fleet's topic (minutes of them, before its own row).
        living, living_env = await _own_topics(settings, runtime, "live")
        emit(
            await bench_live(
                living_env,
                runtime=runtime,
                topic_prefix=living.topic_prefix,
                redis_url=settings.redis_url,
                subscribers=1000,
                rooms=100,
                messages=messages,
                rounds=rounds,
            )
        )
    store_pid = stack.process("mongo").pid if "mongo" in stack.started else None
    if path in ("state", "all"):
        rooms = max(2, min(200, events // 50))  # 200 rooms at the default 20000
        step(f"state query: {rooms} rooms of 50 events")
        emit(await bench_state(runtime, aggregates=rooms, store_pid=store_pid, rounds=rounds))
    if path in ("pm", "all"):
        count = max(2, min(events, 2000))  # every event a store read and two writes
        step(f"process manager: {count} stored events per side and round")
        emit(await bench_pm(runtime, events=count, rounds=rounds, store_pid=store_pid))


async def _own_topics(
    settings: Settings, runtime: Runtime, part: str
) -> tuple[Settings, dict[str, str]]:
    """``settings`` with topics and a group of ``part``'s own, the topics created; and the
    environment of workers on them."""
    own = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}{part}.",
            "group_id": f"{settings.group_id}-{part}",
        }
    )
    await ensure_topics(runtime.kafka, fleet_catalog(own, runtime.domains))
    return own, worker_env(own)


@dataclass(frozen=True, slots=True)
class Capacity:
    """The capacity model computed from this run's costs, and where its plot was written."""

    costs: Costs
    points: list[Point]
    plot: str

    @property
    def text(self) -> str:
        measured = ", ".join(
            f"{p.processes}: {p.rate:,.0f}/s at {p.cpu_ms:.3f} ms CPU/event" for p in self.points
        )
        return (
            f"scale-out measured (appender processes: rate, CPU per event): {measured}\n"
            f"{render(self.costs)}\n  plot: {self.plot}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "capacity": [asdict(plan(rate, self.costs)) for rate in TARGETS],
            "costs": asdict(self.costs),
            "assumed": assumed(self.costs),
            "points": [asdict(p) for p in self.points],
            "plot": self.plot,
        }


def _capacity(points: list[Point], commands_cpu_ms: float | None, plot: str) -> Capacity:
    costs = measured(
        Costs(), appender_cpu_ms=points[0].cpu_ms or None, commands_cpu_ms=commands_cpu_ms
    )
    svg = scale_svg(
        [(p.processes, p.rate, p.cpu_ms) for p in points],
        f"append scale-out on {os.cpu_count()} cores, 8 partitions",
    )
    try:
        Path(plot).write_text(svg)
    except OSError as e:  # the rows after this one are still measured
        step(f"could not write the scale-out plot to {plot} ({e.strerror}); the numbers stand")
        return Capacity(costs, points, f"not written ({e.strerror})")
    step(f"wrote the scale-out plot to {plot}")
    return Capacity(costs, points, plot)
