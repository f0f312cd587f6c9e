"""What the code declares, read from the code: settings, metrics, entry point, paths."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from workers.metric_kinds import declared
from workers.metrics import LiveMetrics, Metrics, ProcessMetrics, RywMetrics, create_metrics
from workers.runtime.compose import ROLES as RUNTIME_ROLES
from workers.runtime.lag import LAG_ROLE
from workers.runtime.processes import PM_ROLE
from workers.runtime.settings import OPENTELEMETRY, documented

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")

# `eventfleet worker --role ROLE`; projections are named with --projection NAME.
ROLES = frozenset(RUNTIME_ROLES) | {LAG_ROLE, PM_ROLE}
# Roles that consume no topic: a fixed replica count, no autoscaler.
UNSCALED_ROLES = frozenset({LAG_ROLE})
PROJECTIONS = frozenset({"chat_messages"})
# Every other command the entry point offers that deploy/ uses.
COMMANDS = frozenset({("topics", "ensure"), ("archive", "--batch", "500")})

# Sample suffixes per metric family type, as prometheus_client exposes them.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
# Series Prometheus itself adds to every scrape target.
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# Labels every series gets from its target: Prometheus' own and our relabelings.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "component"})


@cache
def declared_metrics() -> frozenset[str]:
    """Every sample name the fleet's registry exposes, with _total/_bucket/... suffixes."""
    registry = create_metrics().registry
    names: set[str] = set()
    for family in registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return frozenset(names)


@cache
def declared_labels() -> dict[str, frozenset[str]]:
    """The labels of every sample name the registry exposes (``le`` on histogram buckets)."""
    registry = create_metrics().registry
    by_name = {
        d.name.removesuffix("_total"): d.labels
        for cls in (Metrics, LiveMetrics, RywMetrics, ProcessMetrics)
        for _, d in declared(cls)
    }
    labels: dict[str, frozenset[str]] = {}
    for family in registry.collect():
        names = {n for sample in family.samples for n in sample.labels}
        names |= set(by_name.get(family.name, ()))  # as declared, even unobserved
        for suffix in _SUFFIXES.get(family.type, ("",)):
            extra = {"le"} if suffix == "_bucket" else set()
            labels[family.name + suffix] = frozenset(names | extra)
    return labels


@cache
def setting_names() -> frozenset[str]:
    """Every EVENTFLEET_* variable the settings module reads, and the OpenTelemetry variables
    its SDK reads (documented beside them)."""
    return frozenset(name for name, _, _ in documented()) | {n for n, _, _ in OPENTELEMETRY}


@cache
def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def console_scripts() -> dict[str, str]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    scripts = project.get("scripts", {})
    assert isinstance(scripts, dict)
    return {str(k): str(v) for k, v in scripts.items()}


def check_command(args: list[str]) -> list[str]:
    """Problems with arguments given to the `eventfleet` entry point (empty: fine)."""
    if tuple(args) in COMMANDS:
        return []
    if len(args) < 3 or args[:2] != ["worker", "--role"]:
        return [f"{args} is neither `worker --role ROLE` nor one of {sorted(COMMANDS)}"]
    role, rest = args[2], args[3:]
    if role not in ROLES:
        return [f"{args}: {role!r} is not a role; roles are {sorted(ROLES)}"]
    if role == "projection":
        if len(rest) != 2 or rest[0] != "--projection" or rest[1] not in PROJECTIONS:
            return [f"{args}: a projection needs --projection NAME, NAME in {sorted(PROJECTIONS)}"]
        return []
    return [f"{args}: unexpected arguments {rest}"] if rest else []


def consumer_group(group_id: str, args: list[str]) -> str:
    """The consumer group the runtime joins for these worker arguments."""
    role = args[2]
    if role == "projection":
        return f"{group_id}-projection-{args[4]}"
    return f"{group_id}-{role}"


def consumed_topic(prefix: str, role: str) -> str:
    """The topic a role's consumer group reads (and KEDA should measure)."""
    base = {"commands": "commands", "appender": "events"}.get(role, "events.stored")
    return prefix + base
