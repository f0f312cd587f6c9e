"""Scale on paper: what a target rate needs, from the measured cost of one event per role.

Every role is one single-threaded process per core (Python), scaled by processes; a Kafka
partition is read by one appender process at a time, so a partition carries at most what one
process can append; MongoDB and Redis are sharded by aggregate key. The model takes the
measured CPU per event of the command and append paths and the per-shard rates of the store
and the marker, and keeps each process at ``headroom`` of its core (lag drains, rebalances).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

TARGETS = (10_000, 100_000, 1_000_000)


@dataclass(frozen=True, slots=True)
class Costs:
    """Per-event costs and per-shard ceilings the model is computed from.

    The defaults are the README's measured figures for the Python roles (2-core machine,
    quiet) and published single-node figures for the services, which this machine cannot
    measure (SecantusDB and an embedded Redis stand in for them here).
    """

    commands_cpu_ms: float = 0.33  # HTTP request → marker → produce, per request
    appender_cpu_ms: float = 0.30  # fetch → judge → insert_many → produce → commit, per event
    downstream_cpu_ms: float = 0.05  # snapshotter + forwarder per stored event (rules, routing)
    mongo_inserts_per_shard: float = 25_000.0  # batched insert_many, w=majority j=true, mongod
    redis_calls_per_shard: float = 100_000.0  # pipelined EVALSHA of a small script, one core
    redis_calls_per_event: float = 1.2  # claim-and-mark, plus the appender's filter notes
    headroom: float = 0.7  # of a core a process is planned to use
    measured: tuple[str, ...] = ()
    """The CPU costs this run measured (``commands_cpu_ms``, ``appender_cpu_ms``); every other
    figure is the default above, and the model says so."""

    def per_process(self, cpu_ms: float) -> float:
        """Events per second one process carries at the planned headroom."""
        return self.headroom * 1000.0 / cpu_ms


@dataclass(frozen=True, slots=True)
class Plan:
    """What one target rate needs."""

    rate: int
    commands_pods: int
    appender_pods: int
    downstream_pods: int
    partitions: int
    mongo_shards: int
    redis_shards: int
    cores: float
    first_to_saturate: str


def plan(rate: int, costs: Costs) -> Plan:
    commands = math.ceil(rate / costs.per_process(costs.commands_cpu_ms))
    appenders = math.ceil(rate / costs.per_process(costs.appender_cpu_ms))
    downstream = math.ceil(rate / costs.per_process(costs.downstream_cpu_ms))
    # Partitions: at least one per appender process, rounded up to a power of two so that
    # scaling out by doubling keeps every process's share even.
    partitions = 1 << max(0, math.ceil(math.log2(max(appenders, downstream, 1))))
    mongo = math.ceil(rate / costs.mongo_inserts_per_shard)
    redis = math.ceil(rate * costs.redis_calls_per_event / costs.redis_calls_per_shard)
    cores = rate * (costs.commands_cpu_ms + costs.appender_cpu_ms + costs.downstream_cpu_ms) / 1000
    return Plan(
        rate,
        commands,
        appenders,
        downstream,
        partitions,
        mongo,
        redis,
        cores / costs.headroom,
        first_to_saturate(costs),
    )


def first_to_saturate(costs: Costs) -> str:
    """The unit that reaches its ceiling at the lowest rate: the one to scale first."""
    ceilings = {
        "a commands process (CPU)": costs.per_process(costs.commands_cpu_ms),
        "an appender process, i.e. a partition's share (CPU)": costs.per_process(
            costs.appender_cpu_ms
        ),
        "a MongoDB shard (inserts)": costs.mongo_inserts_per_shard,
        "a Redis shard (script calls)": costs.redis_calls_per_shard / costs.redis_calls_per_event,
    }
    name, ceiling = min(ceilings.items(), key=lambda item: item[1])
    return f"{name} at {ceiling:,.0f} events/s"


def measured(
    costs: Costs, *, appender_cpu_ms: float | None = None, commands_cpu_ms: float | None = None
) -> Costs:
    """The defaults with what this run measured put in their place, and named as measured."""
    for name, value in (("appender_cpu_ms", appender_cpu_ms), ("commands_cpu_ms", commands_cpu_ms)):
        if value:
            costs = replace(costs, **{name: value}, measured=(*costs.measured, name))
    return costs


MEASURED_BY = {
    "commands_cpu_ms": "`eventfleet bench commands` or `all`",
    "appender_cpu_ms": "`eventfleet bench scale` or `all`",
}
"""The bench paths that measure each CPU cost the model can take from a run."""


def assumed(costs: Costs) -> list[str]:
    """The CPU costs the model took as defaults, not from this run."""
    return [name for name in MEASURED_BY if name not in costs.measured]


def _cpu(costs: Costs, name: str) -> str:
    """A CPU cost as the model shows it: measured in this run, or assumed (the default)."""
    value = f"{getattr(costs, name):.3f} ms"
    return f"{value} assumed" if name in assumed(costs) else value


def assumed_note(costs: Costs) -> str:
    """What the model took without measuring it, and what would measure it."""
    what = "; ".join(
        f"{name.removesuffix('_cpu_ms')} {getattr(costs, name):.3f} ms (a reference figure; "
        f"{MEASURED_BY[name]} measures it)"
        for name in assumed(costs)
    )
    head = f"assumed, not measured in this run: {what}. " if what else ""
    return (
        f"  {head}Downstream CPU and the MongoDB and Redis shard rates are always reference "
        "figures."
    )


def render(costs: Costs, targets: tuple[int, ...] = TARGETS) -> str:
    lines = [
        "capacity model (from CPU per event: commands "
        f"{_cpu(costs, 'commands_cpu_ms')}, appender {_cpu(costs, 'appender_cpu_ms')}, downstream "
        f"{costs.downstream_cpu_ms:.3f} ms; MongoDB shard {costs.mongo_inserts_per_shard:,.0f} "
        f"inserts/s, Redis shard {costs.redis_calls_per_shard:,.0f} calls/s; each process at "
        f"{costs.headroom:.0%} of a core)",
        f"  per process: commands {costs.per_process(costs.commands_cpu_ms):,.0f} events/s, "
        f"appender {costs.per_process(costs.appender_cpu_ms):,.0f} events/s (= the most one "
        "partition carries)",
        f"  {'events/s':>10}{'commands':>10}{'appenders':>11}{'downstream':>12}{'partitions':>12}"
        f"{'mongo':>7}{'redis':>7}{'cores':>8}",
    ]
    for rate in targets:
        p = plan(rate, costs)
        lines.append(
            f"  {rate:>10,}{p.commands_pods:>10}{p.appender_pods:>11}{p.downstream_pods:>12}"
            f"{p.partitions:>12}{p.mongo_shards:>7}{p.redis_shards:>7}{p.cores:>8.0f}"
        )
    lines.append(f"  saturates first: {first_to_saturate(costs)}")
    lines.append(assumed_note(costs))
    return "\n".join(lines)
