"""The manifests follow the operator's port (issue 45): every probe and scrape names `ops`, no
Service exposes it publicly, and NetworkPolicies admit it from the monitoring namespace only."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from .k8s_invariants import config, manifest_problems
from .k8s_operator_port import MONITORING_NAMESPACE, NAMESPACE_LABEL, operator_port_problems
from .kustomize import Obj, pod_containers, render
from .project import K8S, OVERLAYS

TREES = ("base", *(f"overlays/{name}" for name in OVERLAYS), "console-proxy")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("tree", TREES)
def test_every_probe_and_scrape_names_the_ops_port(tree: str) -> None:
    objects = render(K8S / tree)
    settings = config(objects)
    assert settings.operator_port == 9090 and settings.http_port == 8080
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert deployments
    for dep in deployments:
        eventfleet = next(c for c in pod_containers(dep) if c["name"] == "eventfleet")
        ports = {p["name"]: p["containerPort"] for p in eventfleet["ports"]}
        assert ports == {"http": 8080, "ops": 9090}, dep["metadata"]["name"]
        probes = [eventfleet[p]["httpGet"]["port"] for p in PROBES if p in eventfleet]
        assert probes and set(probes) == {"ops"}, dep["metadata"]["name"]
        annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/port", "9090") == "9090"
    monitor = find(objects, "PodMonitor", "eventfleet")
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["ops"]
    assert operator_port_problems(objects, settings) == []


@pytest.mark.parametrize("tree", TREES)
def test_no_service_exposes_the_ops_port(tree: str) -> None:
    for svc in (o for o in render(K8S / tree) if o["kind"] == "Service"):
        targets = {p["targetPort"] for p in svc["spec"]["ports"]}
        assert "ops" not in targets and 9090 not in targets, svc["metadata"]["name"]


def test_the_ops_port_is_admitted_from_the_monitoring_namespace_only() -> None:
    objects = render(K8S / "overlays" / "prod")
    ops = find(objects, "NetworkPolicy", "eventfleet-ops")
    assert ops["spec"]["ingress"] == [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: MONITORING_NAMESPACE}}}
            ],
            "ports": [{"port": "ops", "protocol": "TCP"}],
        }
    ]
    api = find(objects, "NetworkPolicy", "eventfleet-api")
    assert [p["port"] for r in api["spec"]["ingress"] for p in r["ports"]] == ["http"]


def _policy(name: str) -> Callable[[list[Obj]], Obj]:
    return lambda objects: find(objects, "NetworkPolicy", name)


def _appender(objects: list[Obj]) -> Obj:
    container: Obj = find(objects, "Deployment", "eventfleet-appender")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


BREAKAGES: list[tuple[str, Callable[[list[Obj]], None], str]] = [
    (
        "no operator port in the ConfigMap",
        lambda o: find(o, "ConfigMap", "eventfleet-config")["data"].pop("EVENTFLEET_OPERATOR_PORT"),
        "ConfigMap/eventfleet-config: set EVENTFLEET_OPERATOR_PORT",
    ),
    (
        "ops port differs from the ConfigMap",
        lambda o: _appender(o)["ports"][1].update(containerPort=9091),
        "Deployment/eventfleet-appender: port `ops` must be EVENTFLEET_OPERATOR_PORT=9090",
    ),
    (
        "startup probe on the API's port",
        lambda o: _appender(o)["startupProbe"]["httpGet"].update(port=8080),
        "startupProbe must GET /healthz on port 9090 (`ops`)",
    ),
    (
        "scrape annotation on the API's port",
        lambda o: find(o, "Deployment", "eventfleet-lag")["spec"]["template"]["metadata"][
            "annotations"
        ].update({"prometheus.io/port": "8080"}),
        "Deployment/eventfleet-lag: annotation prometheus.io/port must be 9090",
    ),
    (
        "PodMonitor on the API's port",
        lambda o: find(o, "PodMonitor", "eventfleet")["spec"]["podMetricsEndpoints"][0].update(
            port="http"
        ),
        "PodMonitor/eventfleet: scrapes port 'http'; /metrics is served on `ops`",
    ),
    (
        "ServiceMonitor on the API's port",
        lambda o: o.append(
            {
                "kind": "ServiceMonitor",
                "metadata": {"name": "eventfleet-api"},
                "spec": {"endpoints": [{"port": "http"}]},
            }
        ),
        "ServiceMonitor/eventfleet-api: scrapes port 'http'",
    ),
    (
        "API Service also serving ops",
        lambda o: find(o, "Service", "eventfleet-commands")["spec"]["ports"].append(
            {"name": "ops", "port": 9090, "targetPort": "ops"}
        ),
        "Service/eventfleet-commands: exposes the operator's port 9090",
    ),
    (
        "load balancer on ops by number",
        lambda o: o.append(
            {
                "kind": "Service",
                "metadata": {"name": "eventfleet-metrics"},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"app.kubernetes.io/component": "lag"},
                    "ports": [{"port": 80, "targetPort": 9090}],
                },
            }
        ),
        "Service/eventfleet-metrics: exposes the operator's port 9090",
    ),
    (
        "no NetworkPolicy at all",
        lambda o: [o.remove(p) for p in [x for x in o if x["kind"] == "NetworkPolicy"]],
        "Deployment/eventfleet-forwarder: no NetworkPolicy selects its pods",
    ),
    (
        "ops admitted from anywhere",
        lambda o: _policy("eventfleet-ops")(o)["spec"]["ingress"][0].pop("from"),
        "NetworkPolicy/eventfleet-ops: admits the operator's port 9090 of "
        "Deployment/eventfleet-appender from beyond the monitoring namespace",
    ),
    (
        "ops admitted from an address block",
        lambda o: _policy("eventfleet-ops")(o)["spec"]["ingress"][0]["from"].append(
            {"ipBlock": {"cidr": "0.0.0.0/0"}}
        ),
        "from beyond the monitoring namespace",
    ),
    (
        "every port of the API's pods admitted",
        lambda o: _policy("eventfleet-api")(o)["spec"]["ingress"][0].pop("ports"),
        "NetworkPolicy/eventfleet-api: admits the operator's port 9090 of "
        "Deployment/eventfleet-commands",
    ),
    (
        "ops admitted from another namespace",
        lambda o: _policy("eventfleet-ops")(o)["spec"]["ingress"][0]["from"][0][
            "namespaceSelector"
        ]["matchLabels"].update({NAMESPACE_LABEL: "default"}),
        "from beyond the monitoring namespace",
    ),
    (
        "Prometheus shut out",
        lambda o: _policy("eventfleet-ops")(o)["spec"]["ingress"].clear(),
        "Deployment/eventfleet-snapshotter: no NetworkPolicy admits its operator's port 9090 "
        "from the monitoring namespace",
    ),
    (
        "API shut out",
        lambda o: o.remove(_policy("eventfleet-api")(o)),
        "Deployment/eventfleet-commands: the clients of Service/eventfleet-commands are refused: "
        "admit port http",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "message"), [(b[1], b[2]) for b in BREAKAGES], ids=[b[0] for b in BREAKAGES]
)
def test_a_manifest_that_leaks_the_ops_port_is_rejected(
    breakage: Callable[[list[Obj]], None], message: str
) -> None:
    objects = copy.deepcopy(render(K8S / "overlays" / "prod"))
    assert manifest_problems(objects) == []
    breakage(objects)
    problems = manifest_problems(objects)
    assert any(message in p for p in problems), problems
