"""The Kustomize overlays render, validate against Kubernetes, and keep the fleet's rules."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from .k8s_invariants import config, manifest_problems, secret_refs
from .k8s_schema import crd_problems, schema_problems
from .kustomize import Obj
from .project import PROJECTIONS, ROLES
from .trees import TREES, find, rendered


@pytest.mark.parametrize("tree", TREES)
def test_every_object_validates_against_the_kubernetes_schemas(tree: str) -> None:
    assert schema_problems(rendered(tree)) == []


@pytest.mark.parametrize("tree", TREES)
def test_rendered_manifests_keep_the_fleet_invariants(tree: str) -> None:
    assert manifest_problems(rendered(tree)) == []


@pytest.mark.parametrize("tree", TREES)
def test_one_deployment_per_role_and_projection(tree: str) -> None:
    objects = rendered(tree)
    runs = {
        tuple(o["spec"]["template"]["spec"]["containers"][0]["args"])
        for o in objects
        if o["kind"] == "Deployment"
    }
    expected: set[tuple[str, ...]] = {("worker", "--role", r) for r in ROLES - {"projection"}}
    expected |= {("worker", "--role", "projection", "--projection", p) for p in PROJECTIONS}
    assert runs == expected
    jobs = [o for o in objects if o["kind"] == "Job"]
    assert [j["spec"]["template"]["spec"]["containers"][0]["args"] for j in jobs] == [
        ["topics", "ensure"]
    ]
    kinds = {o["kind"] for o in objects}
    assert {
        "Service",
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "PodDisruptionBudget",
        "PodMonitor",
        "PrometheusRule",
        "ConfigMap",
    } <= kinds


@pytest.mark.parametrize("tree", TREES)
def test_every_role_names_its_pod_and_node_in_its_spans(tree: str) -> None:
    """OTEL_RESOURCE_ATTRIBUTES from the downward API, each variable it names defined first
    (Kubernetes expands $(VAR) only from variables above it)."""
    for o in rendered(tree):
        if o["kind"] != "Deployment":
            continue
        env = o["spec"]["template"]["spec"]["containers"][0]["env"]
        names = [e["name"] for e in env]
        attributes = next(e["value"] for e in env if e["name"] == "OTEL_RESOURCE_ATTRIBUTES")
        pairs = dict(item.split("=", 1) for item in attributes.split(","))
        fields = {
            e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
            for e in env
            if "fieldRef" in e.get("valueFrom", {})
        }
        for key, path in (("k8s.pod.name", "metadata.name"), ("k8s.node.name", "spec.nodeName")):
            variable = pairs[key].removeprefix("$(").removesuffix(")")
            assert fields[variable] == path, (o["metadata"]["name"], key)
            assert names.index(variable) < names.index("OTEL_RESOURCE_ATTRIBUTES")


def test_overlays_differ_where_environments_do() -> None:
    dev, prod = config(rendered("overlays/dev")), config(rendered("overlays/prod"))
    assert (dev.partitions, dev.replication) == (2, 1)
    assert (prod.partitions, prod.replication) == (24, 3)
    assert dev.topic_prefix != prod.topic_prefix and dev.group_id != prod.group_id
    for tree in ("overlays/dev", "overlays/prod"):
        for obj in rendered(tree):
            assert obj["metadata"].get("namespace"), (
                f"{tree}: {obj['metadata']['name']} has no namespace"
            )
            for c in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                repository, _, tag = c["image"].rpartition(":")
                assert repository and tag and tag != "latest", (
                    f"{tree}: pin the image tag, got {c['image']}"
                )


def test_secrets_are_referenced_alike_and_only_dev_ships_one() -> None:
    dev, prod = rendered("overlays/dev"), rendered("overlays/prod")
    refs = {("eventfleet-secrets", "mongo-url"), ("eventfleet-secrets", "redis-url")}
    assert secret_refs(dev) == secret_refs(prod) == refs
    assert [o["metadata"]["name"] for o in dev if o["kind"] == "Secret"] == [
        "eventfleet-secrets",
        "eventfleet-kafka",
    ]
    assert not [o for o in prod if o["kind"] == "Secret"]


def _deployment(name: str) -> Callable[[list[Obj]], Obj]:
    return lambda objects: find(objects, "Deployment", name)


def _container(objects: list[Obj]) -> Obj:
    container: Obj = find(objects, "Deployment", "eventfleet-appender")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


BREAKAGES: list[tuple[str, Callable[[list[Obj]], None], str]] = [
    (
        "max replicas above partitions",
        lambda o: find(o, "ScaledObject", "eventfleet-forwarder")["spec"].update(
            maxReplicaCount=25
        ),
        "at most 25 pods but eventfleet.events.stored has 24 partitions (EVENTFLEET_PARTITIONS)",
    ),
    (
        "partitions below max replicas",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].update(
            EVENTFLEET_PARTITIONS="16"
        ),
        "ScaledObject/eventfleet-appender: at most 24 pods but eventfleet.events has 16 partitions",
    ),
    (
        "scales on a topic nobody creates",
        lambda o: find(o, "ScaledObject", "eventfleet-forwarder")["spec"]["triggers"][0][
            "metadata"
        ].update(topic="eventfleet.elsewhere"),
        "scales on 'eventfleet.elsewhere', a topic the topics-ensure Job does not create",
    ),
    (
        "hpa above partitions",
        lambda o: find(o, "HorizontalPodAutoscaler", "eventfleet-commands")["spec"].update(
            maxReplicas=30
        ),
        "at most 30 pods",
    ),
    (
        "wrong consumer group",
        lambda o: find(o, "ScaledObject", "eventfleet-appender")["spec"]["triggers"][0][
            "metadata"
        ].update(consumerGroup="eventfleet-forwarder"),
        "trigger consumerGroup is 'eventfleet-forwarder', the role uses 'eventfleet-appender'",
    ),
    (
        "wrong topic",
        lambda o: find(o, "ScaledObject", "eventfleet-snapshotter")["spec"]["triggers"][0][
            "metadata"
        ].update(topic="eventfleet.events"),
        "the role uses 'eventfleet.events.stored'",
    ),
    (
        "group id changed only in the ConfigMap",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].update(
            EVENTFLEET_GROUP_ID="other"
        ),
        "the role uses 'other-appender'",
    ),
    (
        "grace period too short",
        lambda o: _deployment("eventfleet-snapshotter")(o)["spec"]["template"]["spec"].update(
            terminationGracePeriodSeconds=20
        ),
        "terminationGracePeriodSeconds 20 must exceed",
    ),
    (
        "drain longer than grace",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].update(
            EVENTFLEET_DRAIN_TIMEOUT_S="60"
        ),
        "EVENTFLEET_DRAIN_TIMEOUT_S 60 s",
    ),
    (
        "unknown env var",
        lambda o: _container(o)["env"].append({"name": "EVENTFLEET_PARTITION", "value": "1"}),
        "env EVENTFLEET_PARTITION is not a setting",
    ),
    (
        "unknown ConfigMap key",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].update(
            EVENTFLEET_HTTP_PROT="1"
        ),
        "EVENTFLEET_HTTP_PROT is not a setting",
    ),
    (
        "invalid ConfigMap value",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].update(
            EVENTFLEET_PARTITIONS="many"
        ),
        "EVENTFLEET_PARTITIONS='many' is invalid",
    ),
    (
        "password in the ConfigMap",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].update(
            EVENTFLEET_MONGO_URL="mongodb://u:p@m:27017"
        ),
        "may hold a password",
    ),
    (
        "unknown role",
        lambda o: _container(o).update(args=["worker", "--role", "appendr"]),
        "'appendr' is not a role",
    ),
    (
        "readiness on the liveness path",
        lambda o: _container(o)["readinessProbe"]["httpGet"].update(path="/healthz"),
        "readinessProbe must GET /readyz on port 9090",
    ),
    (
        "probe on the API's port",
        lambda o: _container(o)["livenessProbe"]["httpGet"].update(port="http"),
        "livenessProbe must GET /healthz on port 9090 (`ops`)",
    ),
    (
        "port differs from the ConfigMap",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].update(
            EVENTFLEET_HTTP_PORT="8081"
        ),
        "port `http` must be EVENTFLEET_HTTP_PORT=8081",
    ),
    (
        "surge beyond partitions",
        lambda o: _deployment("eventfleet-forwarder")(o)["spec"]["strategy"][
            "rollingUpdate"
        ].update(maxSurge=1),
        "maxSurge must be 0",
    ),
    (
        "replicas fighting the autoscaler",
        lambda o: _deployment("eventfleet-appender")(o)["spec"].update(replicas=3),
        "drop spec.replicas",
    ),
    (
        "two autoscalers",
        lambda o: o.append(
            {
                **copy.deepcopy(find(o, "HorizontalPodAutoscaler", "eventfleet-commands")),
                "metadata": {"name": "second"},
            }
        ),
        "needs exactly one autoscaler",
    ),
    (
        "no memory limit",
        lambda o: _container(o)["resources"].pop("limits"),
        "sets no limits.memory",
    ),
    (
        "no domains",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].pop("EVENTFLEET_DOMAINS"),
        "ConfigMap/eventfleet-config: EVENTFLEET_DOMAINS is not set",
    ),
    (
        "HS256 secret file not mounted",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].update(
            EVENTFLEET_AUTH_HS256_SECRET_FILE="/etc/eventfleet/hs256/secret"
        ),
        "EVENTFLEET_AUTH_HS256_SECRET_FILE=/etc/eventfleet/hs256/secret is in no mounted volume",
    ),
    (
        "no PDB",
        lambda o: o.remove(find(o, "PodDisruptionBudget", "eventfleet-forwarder")),
        "Deployment/eventfleet-forwarder: no PodDisruptionBudget",
    ),
    (
        "scaler without Kafka credentials",
        lambda o: find(o, "ScaledObject", "eventfleet-forwarder")["spec"]["triggers"][0].pop(
            "authenticationRef"
        ),
        "must name a TriggerAuthentication",
    ),
    (
        "password file not mounted",
        lambda o: _container(o).update(
            volumeMounts=[
                m for m in _container(o)["volumeMounts"] if m["name"] != "kafka-credentials"
            ]
        ),
        "EVENTFLEET_KAFKA_SASL_PASSWORD_FILE=/etc/eventfleet/kafka/password is in no mounted volume",
    ),
    (
        "autoscaled lag exporter",
        lambda o: o.append(
            {
                **copy.deepcopy(find(o, "HorizontalPodAutoscaler", "eventfleet-commands")),
                "metadata": {"name": "lag-hpa"},
                "spec": {
                    **find(o, "HorizontalPodAutoscaler", "eventfleet-commands")["spec"],
                    "scaleTargetRef": {"kind": "Deployment", "name": "eventfleet-lag"},
                },
            }
        ),
        "consumes nothing; drop its autoscaler",
    ),
    (
        "service selects nothing",
        lambda o: find(o, "Service", "eventfleet-commands")["spec"].update(selector={"app": "x"}),
        "selects [], expected one Deployment",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "message"), [(b[1], b[2]) for b in BREAKAGES], ids=[b[0] for b in BREAKAGES]
)
def test_a_broken_manifest_is_rejected(breakage: Callable[[list[Obj]], None], message: str) -> None:
    objects = rendered("overlays/prod")
    breakage(objects)
    problems = manifest_problems(objects)
    assert any(message in p for p in problems), problems


def test_schema_validation_rejects_what_the_api_server_would() -> None:
    objects = rendered("overlays/prod")
    _container(objects)["resource"] = {}
    find(objects, "HorizontalPodAutoscaler", "eventfleet-commands")["spec"]["minReplicas"] = "2"
    problems = schema_problems(objects)
    assert any(
        "Deployment/eventfleet-appender" in p and "'resource' was unexpected" in p for p in problems
    )
    assert any(
        "HorizontalPodAutoscaler/eventfleet-commands: spec.minReplicas" in p for p in problems
    )


@pytest.mark.parametrize(
    ("kind", "breakage", "message"),
    [
        (
            "ScaledObject",
            lambda s: s["triggers"][0]["metadata"].update(lagThreshhold="5"),
            "'lagThreshhold' was unexpected",
        ),
        (
            "ScaledObject",
            lambda s: s["triggers"][0]["metadata"].update(lagThreshold=5),
            "5 is not of type 'string'",
        ),
        (
            "ScaledObject",
            lambda s: s.pop("scaleTargetRef"),
            "'scaleTargetRef' is a required property",
        ),
        ("ScaledObject", lambda s: s.update(maxReplicaCount="8"), "'8' is not of type 'integer'"),
        (
            "ScaledObject",
            lambda s: s["advanced"].update(horizontalPodAutoscalerConfg={}),
            "'horizontalPodAutoscalerConfg' was unexpected",
        ),
        (
            "TriggerAuthentication",
            lambda s: s["secretTargetRef"][0].pop("key"),
            "'key' is a required property",
        ),
        (
            "PodMonitor",
            lambda s: s["podMetricsEndpoints"][0].update(interval="15 seconds"),
            "does not match",
        ),
        ("PodMonitor", lambda s: s.pop("selector"), "'selector' is a required property"),
        (
            "PrometheusRule",
            lambda s: s["groups"][0]["rules"][0].pop("expr"),
            "'expr' is a required property",
        ),
        (
            "PrometheusRule",
            lambda s: s["groups"][0]["rules"][0].update(**{"for": "15 minutes"}),
            "does not match",
        ),
    ],
)
def test_custom_resources_are_checked_structurally(
    kind: str, breakage: Callable[[Obj], None], message: str
) -> None:
    objects = rendered("base")
    obj = next(o for o in objects if o["kind"] == kind)
    assert crd_problems(obj) == []
    breakage(obj["spec"])
    assert any(message in p for p in crd_problems(obj)), crd_problems(obj)


def test_documented_kafka_scaler_fields_such_as_unsafe_ssl_are_accepted() -> None:
    objects = rendered("overlays/prod")
    scaled = find(objects, "ScaledObject", "eventfleet-appender")
    scaled["spec"]["triggers"][0]["metadata"].update(unsafeSsl="false", tls="enable")
    assert crd_problems(scaled) == []
    scaled["spec"]["triggers"][0]["metadata"].update(unsafeSsl="maybe")
    assert any("'maybe' is not one of" in p for p in crd_problems(scaled))


def test_an_unknown_custom_resource_is_not_waved_through() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    assert schema_problems([obj]) == [
        "Widget/w: Couldn't find schema for kind Widget with api "
        "version example.com/v1 for kubernetes version 1.29"
    ]
