"""The fleet's own rules over rendered manifests: what a schema cannot know.

Each check returns a list of problems (sentences naming the object and the fix), so a
test can assert the list is empty for the real manifests and contains a given problem
for a deliberately broken one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from topics.errors import ConfigError
from workers.runtime.connections import fleet_catalog
from workers.runtime.loading import load_domains
from workers.runtime.settings import Settings
from workers.secrets import CONNECTION_SECRETS, SECRETS

from .k8s_operator_port import operator_port_problems
from .kustomize import Obj, pod_containers
from .project import UNSCALED_ROLES, check_command, consumed_topic, consumer_group, setting_names

CONFIG_MAP = "eventfleet-config"
SECRET_SETTINGS = frozenset({"EVENTFLEET_MONGO_URL", "EVENTFLEET_REDIS_URL"})
AUTOSCALERS = {
    "ScaledObject": ("maxReplicaCount", "minReplicaCount"),
    "HorizontalPodAutoscaler": ("maxReplicas", "minReplicas"),
}


def config(objects: list[Obj]) -> Settings:
    """The settings every pod gets from the ConfigMap (raises ConfigError when invalid)."""
    maps = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == CONFIG_MAP]
    if len(maps) != 1:
        raise ConfigError(f"expected one ConfigMap {CONFIG_MAP}, found {len(maps)}")
    return Settings.from_env(maps[0].get("data", {}))


def _of(objects: list[Obj], kind: str) -> Iterator[Obj]:
    return (o for o in objects if o["kind"] == kind)


def _name(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector.get("matchLabels", selector)
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def config_problems(objects: list[Obj]) -> list[str]:
    maps = [o for o in _of(objects, "ConfigMap") if o["metadata"]["name"] == CONFIG_MAP]
    data = maps[0].get("data", {}) if maps else {}
    problems = [
        f"ConfigMap/{CONFIG_MAP}: {k} is not a setting (workers/runtime/settings/)"
        for k in data
        if k not in setting_names()
    ]
    problems += [
        f"ConfigMap/{CONFIG_MAP}: {k} may hold a password; take it from the Secret"
        for k in data
        if k in SECRET_SETTINGS
    ]
    try:
        settings = config(objects)
    except ConfigError as e:
        problems.append(f"ConfigMap/{CONFIG_MAP}: {e}")
        return problems
    try:
        load_domains(settings.domains)  # unset or wrong: every worker refuses to start
    except ConfigError as e:
        problems.append(f"ConfigMap/{CONFIG_MAP}: {e}")
    return problems


def container_problems(obj: Obj) -> list[str]:
    """Arguments, env names, ports, probes and resources of a pod template's containers."""
    problems: list[str] = []
    where = _name(obj)
    for container in pod_containers(obj):
        problems += [f"{where}: {p}" for p in check_command(container.get("args", []))]
        if "command" in container:
            problems.append(
                f"{where}: set args, not command: the image's entry point is eventfleet"
            )
        for env in container.get("env", []):
            if env["name"] not in setting_names() and not _downward(env):
                problems.append(f"{where}: env {env['name']} is not a setting")
            if env["name"] in SECRET_SETTINGS and "secretKeyRef" not in env.get("valueFrom", {}):
                problems.append(f"{where}: {env['name']} must come from a secretKeyRef")
        for source in container.get("envFrom", []):
            if source.get("configMapRef", {}).get("name") != CONFIG_MAP:
                problems.append(f"{where}: envFrom must reference ConfigMap {CONFIG_MAP}")
        resources = container.get("resources", {})
        for need in ("requests.cpu", "requests.memory", "limits.memory"):
            section, key = need.split(".")
            if key not in resources.get(section, {}):
                problems.append(f"{where}: container {container['name']} sets no {need}")
    return problems


def _downward(env: Obj) -> bool:
    """A variable the downward API fills (the pod's own name, node, namespace): no setting,
    only a value other variables name (OTEL_RESOURCE_ATTRIBUTES)."""
    return "fieldRef" in env.get("valueFrom", {}) and env["name"].startswith("K8S_")


def _named_ports(container: Obj) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}


PROBES = (
    ("livenessProbe", "/healthz"),
    ("readinessProbe", "/readyz"),
    ("startupProbe", "/healthz"),
)


def probed_port(settings: Settings) -> int:
    """Where /healthz, /readyz and /metrics are served: the operator's port when it is set (the
    API's port then serves none of them), else the API's."""
    return settings.http_port if settings.operator_port is None else settings.operator_port


def _serving_problems(where: str, container: Obj, grace: int, settings: Settings) -> list[str]:
    """The http and ops ports, the probes on ops, and a grace period that covers the drain."""
    problems = []
    ports = _named_ports(container)
    if ports.get("http") != settings.http_port:
        problems.append(f"{where}: port `http` must be EVENTFLEET_HTTP_PORT={settings.http_port}")
    probed = probed_port(settings)
    if settings.operator_port is not None and ports.get("ops") != probed:
        problems.append(f"{where}: port `ops` must be EVENTFLEET_OPERATOR_PORT={probed}")
    for probe, path in PROBES:
        get = container.get(probe, {}).get("httpGet")
        if get is None:
            if probe != "startupProbe":
                problems.append(f"{where}: {probe} must be an httpGet on {path}")
            continue
        port = ports.get(get["port"], get["port"])
        if get.get("path") != path or port != probed:
            problems.append(f"{where}: {probe} must GET {path} on port {probed} (`ops`)")
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    sleep = int(pre_stop.get("exec", {}).get("command", ["sleep", "0"])[-1])
    if grace <= settings.drain_timeout_s + sleep:
        problems.append(
            f"{where}: terminationGracePeriodSeconds {grace} must exceed the preStop "
            f"sleep {sleep} s + EVENTFLEET_DRAIN_TIMEOUT_S {settings.drain_timeout_s} s"
        )
    return problems


def deployment_problems(dep: Obj, settings: Settings) -> list[str]:
    """Probes, ports, drain timing, rollout strategy and security of one role Deployment."""
    where = _name(dep)
    template = dep["spec"]["template"]
    pod = template["spec"]
    grace = pod.get("terminationGracePeriodSeconds", 30)
    problems = container_problems(dep)
    for container in pod["containers"]:
        problems += _serving_problems(where, container, grace, settings)
    annotated = template["metadata"].get("annotations", {}).get("prometheus.io/port")
    if annotated != str(probed_port(settings)):
        problems.append(
            f"{where}: annotation prometheus.io/port must be {probed_port(settings)}, the port "
            "that serves /metrics"
        )
    surge = dep["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge")
    if surge != 0:
        problems.append(
            f"{where}: maxSurge must be 0; a surge pod beyond the partitions holds none "
            "(idle) and costs the group a rebalance"
        )
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{where}: pods must set securityContext.runAsNonRoot")
    if "replicas" in dep["spec"] and _role(dep) not in UNSCALED_ROLES:
        problems.append(f"{where}: drop spec.replicas; its autoscaler owns the count")
    return problems


def _role(dep: Obj) -> str:
    args = dep["spec"]["template"]["spec"]["containers"][0].get("args", [])
    return str(args[2]) if len(args) > 2 else ""


FILE_SETTINGS = (
    *(f"{secret.name}_file" for secret in (*SECRETS, *CONNECTION_SECRETS)),
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
)


def file_mount_problems(obj: Obj, settings: Settings) -> list[str]:
    """Every file a setting names lies under a volume the container mounts."""
    problems = []
    for container in pod_containers(obj):
        mounts = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])]
        for name in FILE_SETTINGS:
            path = getattr(settings, name)
            if path and not any(path.startswith(m) for m in mounts):
                problems.append(
                    f"{_name(obj)}: EVENTFLEET_{name.upper()}={path} is in no mounted volume; "
                    "mount the Secret that holds it"
                )
    return problems


def autoscaler_problems(objects: list[Obj], settings: Settings) -> list[str]:
    """One autoscaler per Deployment, within the partitions of the topic it scales on,
    measuring the right group."""
    problems: list[str] = []
    deployments = {d["metadata"]["name"]: d for d in _of(objects, "Deployment")}
    targets: dict[str, list[str]] = {name: [] for name in deployments}
    for obj in (o for o in objects if o["kind"] in AUTOSCALERS):
        where, spec = _name(obj), obj["spec"]
        high, low = (spec.get(key, 1) for key in AUTOSCALERS[obj["kind"]])
        target = spec["scaleTargetRef"]["name"]
        if target not in deployments:
            problems.append(f"{where}: scales {target}, which is not a Deployment here")
            continue
        targets[target].append(where)
        problems += _ceiling_problems(obj, high, deployments[target], settings)
        if low > high:
            problems.append(f"{where}: the minimum {low} is above the maximum {high}")
        if obj["kind"] == "ScaledObject":
            problems += _trigger_problems(obj, deployments[target], settings, objects)
    for name, scalers in targets.items():
        unscaled = _role(deployments[name]) in UNSCALED_ROLES
        if unscaled and scalers:
            problems.append(f"Deployment/{name}: consumes nothing; drop its autoscaler {scalers}")
        elif not unscaled and len(scalers) != 1:
            problems.append(f"Deployment/{name}: needs exactly one autoscaler, has {scalers}")
    return problems


def _ceiling_problems(scaler: Obj, high: int, dep: Obj, settings: Settings) -> list[str]:
    """At most one pod per partition of the topic it scales on (a ScaledObject's trigger topic,
    else the topic its role consumes), as the topics-ensure Job creates it from the ConfigMap:
    a pod beyond them is idle, a member of its group holding no partition."""
    where, args = _name(scaler), dep["spec"]["template"]["spec"]["containers"][0].get("args", [])
    if len(args) < 3:
        return []  # not a worker role: _trigger_problems says so
    triggers = [t for t in scaler["spec"].get("triggers", []) if t.get("type") == "kafka"]
    topic = (
        triggers[0]["metadata"].get("topic") if triggers
        else consumed_topic(settings.topic_prefix, args[2])
    )  # fmt: skip
    created = {
        s.name: s.partitions for s in fleet_catalog(settings, load_domains(settings.domains))
    }
    if topic not in created:
        return [f"{where}: scales on {topic!r}, a topic the topics-ensure Job does not create"]
    if high > created[topic]:
        return [
            f"{where}: at most {high} pods but {topic} has {created[topic]} partitions "
            f"(EVENTFLEET_PARTITIONS); the pods beyond them would hold none: lower the maximum"
        ]
    return []


def _trigger_problems(scaled: Obj, dep: Obj, settings: Settings, objects: list[Obj]) -> list[str]:
    where = _name(scaled)
    args = dep["spec"]["template"]["spec"]["containers"][0].get("args", [])
    if check_command(args) or args[0] != "worker":
        return [f"{where}: its Deployment does not run a worker role"]
    triggers = [t for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]
    if len(triggers) != 1:
        return [f"{where}: needs exactly one kafka trigger"]
    meta = triggers[0]["metadata"]
    auth = triggers[0].get("authenticationRef", {}).get("name")
    known = {o["metadata"]["name"] for o in _of(objects, "TriggerAuthentication")}
    auth_problems = (
        []
        if auth in known
        else [f"{where}: the kafka trigger must name a TriggerAuthentication (has {auth!r})"]
    )
    want = {
        "consumerGroup": consumer_group(settings.group_id, args),
        "topic": consumed_topic(settings.topic_prefix, args[2]),
        "bootstrapServers": urlsplit(settings.kafka_url).netloc,
    }
    return auth_problems + [
        f"{where}: trigger {key} is {meta.get(key)!r}, the role uses {value!r}"
        for key, value in want.items()
        if meta.get(key) != value
    ]


def wiring_problems(objects: list[Obj], settings: Settings) -> list[str]:
    """Services, PDBs, the PodMonitor and Secret references reach what they name."""
    problems: list[str] = []
    pods = {d["metadata"]["name"]: d["spec"]["template"] for d in _of(objects, "Deployment")}
    for svc in _of(objects, "Service"):
        chosen = [
            n for n, t in pods.items() if _selects(svc["spec"]["selector"], t["metadata"]["labels"])
        ]
        if len(chosen) != 1:
            problems.append(f"{_name(svc)}: selects {chosen}, expected one Deployment")
        problems += [
            f"{_name(svc)}: targetPort must be a named port (http, or ops)"
            for p in svc["spec"]["ports"]
            if p.get("targetPort") not in ("http", "ops")
        ]
    for name, template in pods.items():
        labels = template["metadata"]["labels"]
        if not any(
            _selects(p["spec"]["selector"], labels) for p in _of(objects, "PodDisruptionBudget")
        ):
            problems.append(f"Deployment/{name}: no PodDisruptionBudget selects its pods")
        if not any(_selects(m["spec"]["selector"], labels) for m in _of(objects, "PodMonitor")):
            problems.append(f"Deployment/{name}: no PodMonitor scrapes its pods")
    secrets = {s["metadata"]["name"]: s for s in _of(objects, "Secret")}
    for name, key in secret_refs(objects):
        secret = secrets.get(name)
        if secret is not None and key not in {
            **secret.get("data", {}),
            **secret.get("stringData", {}),
        }:
            problems.append(f"Secret/{name} has no key {key}, which a pod references")
    return problems


def secret_refs(objects: list[Obj]) -> set[tuple[str, str]]:
    """(Secret name, key) of every secretKeyRef in a pod template."""
    refs = set()
    for obj in objects:
        for container in pod_containers(obj):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    return refs


def manifest_problems(objects: list[Obj]) -> list[str]:
    """Every invariant over one rendered overlay."""
    problems = config_problems(objects)
    if problems:
        return problems
    settings = config(objects)
    for dep in _of(objects, "Deployment"):
        problems += deployment_problems(dep, settings)
        problems += file_mount_problems(dep, settings)
    for job in (*_of(objects, "Job"), *_of(objects, "CronJob")):
        problems += container_problems(job)
        problems += file_mount_problems(job, settings)
    problems += autoscaler_problems(objects, settings)
    problems += wiring_problems(objects, settings)
    problems += operator_port_problems(objects, settings)
    return problems
