"""deploy/compose.yaml wires every role to real Kafka, a MongoDB replica set, Redis, NATS."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from .compose_checks import compose_problems, fleet_services
from .kustomize import render
from .project import DEPLOY, K8S

COMPOSE = DEPLOY / "compose.yaml"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def test_compose_file_keeps_the_wiring_rules() -> None:
    assert compose_problems(compose(), DEPLOY) == []


def test_compose_runs_the_same_roles_as_kubernetes() -> None:
    in_compose = {tuple(s["command"]) for s in fleet_services(compose()).values()}
    in_k8s = {
        tuple(c["args"])
        for o in render(K8S / "base")
        if o["kind"] in ("Deployment", "Job")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert in_compose == in_k8s


def test_real_services_not_surrogates() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["mongo"]["image"].startswith("mongo:")
    assert services["redis"]["image"].startswith("redis:")
    assert "--jetstream" in services["nats"]["command"]


def _env(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def get(doc: dict[str, Any]) -> dict[str, Any]:
        env: dict[str, Any] = doc["services"][name]["environment"]
        return env

    return get


BREAKAGES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "unknown role",
        lambda d: d["services"]["forwarder"].update(command=["worker", "--role", "fwd"]),
        "'fwd' is not a role",
    ),
    (
        "unknown setting",
        lambda d: _env("appender")(d).update(EVENTFLEET_BATCH=5),
        "EVENTFLEET_BATCH is not a setting",
    ),
    (
        "bad value",
        lambda d: _env("appender")(d).update(EVENTFLEET_KAFKA_URL="kafka:9092"),
        "is invalid",
    ),
    (
        "no replica set",
        lambda d: d["services"]["mongo"].update(command=["--bind_ip_all"]),
        "--replSet",
    ),
    (
        "url without the replica set",
        lambda d: _env("snapshotter")(d).update(EVENTFLEET_MONGO_URL="mongodb://mongo:27017"),
        "service snapshotter: EVENTFLEET_MONGO_URL must name replicaSet=rs0",
    ),
    (
        "host that is no service",
        lambda d: _env("commands")(d).update(EVENTFLEET_REDIS_URL="redis://cache:6379/0"),
        "names cache:6379, which is not a compose service",
    ),
    (
        "unadvertised listener",
        lambda d: _env("commands")(d).update(EVENTFLEET_KAFKA_URL="kafka://kafka:9093"),
        "is not an advertised Kafka listener",
    ),
    (
        "short grace",
        lambda d: d["services"]["appender"].update(stop_grace_period="10s"),
        "stop_grace_period must exceed",
    ),
    (
        "idempotence off",
        lambda d: _env("appender")(d).update(EVENTFLEET_KAFKA_IDEMPOTENCE="false"),
        "set EVENTFLEET_KAFKA_IDEMPOTENCE=true",
    ),
    (
        "no wait for topics",
        lambda d: d["services"]["appender"]["depends_on"].pop("topics"),
        "must wait for `topics ensure`",
    ),
    (
        "missing Dockerfile",
        lambda d: d["services"]["appender"]["build"].update(dockerfile="Dockerfile"),
        "does not exist",
    ),
    (
        "no operator port",
        lambda d: _env("lag")(d).pop("EVENTFLEET_OPERATOR_PORT"),
        "service lag: set EVENTFLEET_OPERATOR_PORT",
    ),
    (
        "operator port published to every interface",
        lambda d: d["services"]["commands"].update(ports=["8080:8080", "9091:9090"]),
        "service commands: publishes the operator's port 9090 beyond the host's loopback",
    ),
    (
        "missing mounted file",
        lambda d: d["services"]["prometheus"]["volumes"].append("./nowhere.yml:/etc/x.yml"),
        "mounts ./nowhere.yml",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "message"), [(b[1], b[2]) for b in BREAKAGES], ids=[b[0] for b in BREAKAGES]
)
def test_a_broken_compose_file_is_rejected(
    breakage: Callable[[dict[str, Any]], None], message: str
) -> None:
    doc = copy.deepcopy(compose())
    # YAML anchors share one environment dict between services: give each its own.
    for svc in fleet_services(doc).values():
        svc["environment"] = dict(svc["environment"])
        svc["depends_on"] = copy.deepcopy(svc["depends_on"])
    breakage(doc)
    problems = compose_problems(doc, DEPLOY)
    assert any(message in p for p in problems), problems


def test_the_tracing_profile_runs_a_collector_and_a_trace_ui_from_official_images() -> None:
    doc = compose()
    services = doc["services"]
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector:")
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one:")
    for name in ("otel-collector", "jaeger"):
        assert services[name]["profiles"] == ["tracing"]
    collector = yaml.safe_load((COMPOSE.parent / "otel" / "collector.yaml").read_text())
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    exporter = collector["exporters"]["otlp/jaeger"]["endpoint"]
    assert exporter.split(":")[0] in services  # the trace UI's own OTLP port
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]
    for name, svc in fleet_services(doc).items():
        # Off unless the profile's endpoint is named: an empty value leaves tracing off.
        endpoint = svc["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint == "${EVENTFLEET_COMPOSE_OTLP_ENDPOINT:-}", name
    prometheus = services["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in prometheus
