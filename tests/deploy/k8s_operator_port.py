"""The operator's port over rendered manifests: who may reach /metrics, the probes and the console.

EVENTFLEET_OPERATOR_PORT takes them off the API's port (docs/security.md). These checks hold the
manifests to it: every scrape names the `ops` port, no Service exposes it publicly, and the
NetworkPolicies admit it from the monitoring namespace alone while the API's Service stays
reachable. Kubelet probes need no rule (traffic from the pod's own node is always allowed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from workers.runtime.settings import Settings

from .kustomize import Obj

OPS = "ops"
MONITORING_NAMESPACE = "monitoring"
"""Where Prometheus runs: the only namespace admitted to the operator's port."""
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
PUBLIC_TYPES = frozenset({"NodePort", "LoadBalancer"})


def _name(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _of(objects: list[Obj], kind: str) -> Iterator[Obj]:
    return (o for o in objects if o["kind"] == kind)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector's verdict; the empty selector selects every pod."""
    match = selector.get("matchLabels", {})
    return all(labels.get(k) == v for k, v in match.items())


def _pods(objects: list[Obj]) -> dict[str, Obj]:
    """Each Deployment's pod template, by the Deployment's name."""
    return {d["metadata"]["name"]: d["spec"]["template"] for d in _of(objects, "Deployment")}


def _names_port(port: object, name: str, number: int) -> bool:
    return port == name or port == number or port == str(number)


def operator_port_problems(objects: list[Obj], settings: Settings) -> list[str]:
    """Every rule of this module over one rendered tree."""
    port = settings.operator_port
    if port is None or port == settings.http_port:
        return [
            "ConfigMap/eventfleet-config: set EVENTFLEET_OPERATOR_PORT apart from "
            "EVENTFLEET_HTTP_PORT: the probes, /metrics and the console off the API's port"
        ]
    return (
        scrape_problems(objects)
        + exposure_problems(objects, port)
        + network_problems(objects, settings)
    )


def scrape_problems(objects: list[Obj]) -> list[str]:
    """Every PodMonitor and ServiceMonitor endpoint scrapes the `ops` port."""
    problems = []
    for monitor in (*_of(objects, "PodMonitor"), *_of(objects, "ServiceMonitor")):
        key = "podMetricsEndpoints" if monitor["kind"] == "PodMonitor" else "endpoints"
        for endpoint in monitor["spec"].get(key, []):
            if endpoint.get("port") != OPS:
                problems.append(
                    f"{_name(monitor)}: scrapes port {endpoint.get('port')!r}; /metrics is "
                    f"served on `{OPS}` (EVENTFLEET_OPERATOR_PORT) only"
                )
    return problems


def exposure_problems(objects: list[Obj], port: int) -> list[str]:
    """No Service puts the operator's port before the API's clients: not a NodePort or a load
    balancer, not beside another port (the API's Service), not on an external address."""
    problems = []
    for svc in _of(objects, "Service"):
        spec, ports = svc["spec"], svc["spec"].get("ports", [])
        ops = [p for p in ports if _names_port(p.get("targetPort", p.get("port")), OPS, port)]
        public = spec.get("type", "ClusterIP") in PUBLIC_TYPES or spec.get("externalIPs")
        if ops and (public or len(ops) != len(ports)):
            problems.append(
                f"{_name(svc)}: exposes the operator's port {port} (/metrics, the probes, the "
                "console); Prometheus scrapes the pods (PodMonitor), so drop it from the Service"
            )
    return problems


def _admits(rule: Obj, name: str, number: int) -> bool:
    """Whether an ingress rule lets traffic reach the port (no `ports`: every port)."""
    ports = rule.get("ports")
    if not ports:
        return True
    for entry in ports:
        low = entry.get("port")
        if low is None or _names_port(low, name, number):
            return True
        if isinstance(low, int) and low <= number <= entry.get("endPort", low):
            return True
    return False


def _from_monitoring(peer: Obj) -> bool:
    """A peer that is (pods of) the monitoring namespace and nothing wider."""
    labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
    return "ipBlock" not in peer and labels.get(NAMESPACE_LABEL) == MONITORING_NAMESPACE


def _ingress_rules(objects: list[Obj], labels: dict[str, str]) -> list[tuple[str, Obj]] | None:
    """(policy, rule) of every ingress rule that applies to pods with ``labels``; None when no
    policy isolates them for ingress (then everything reaches every port)."""
    policies = [
        p
        for p in _of(objects, "NetworkPolicy")
        if _selects(p["spec"].get("podSelector", {}), labels)
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not policies:
        return None
    return [(_name(p), rule) for p in policies for rule in p["spec"].get("ingress", [])]


def network_problems(objects: list[Obj], settings: Settings) -> list[str]:
    """The operator's port from the monitoring namespace only; the API's port open on the pods a
    Service sends the API's clients to."""
    port = settings.operator_port or 0
    problems = []
    for name, pod in _pods(objects).items():
        where = f"Deployment/{name}"
        rules = _ingress_rules(objects, pod["metadata"]["labels"])
        if rules is None:
            problems.append(
                f"{where}: no NetworkPolicy selects its pods, so any pod reaches its operator's "
                f"port {port}; admit it from the {MONITORING_NAMESPACE} namespace only"
            )
            continue
        ops = [(policy, rule) for policy, rule in rules if _admits(rule, OPS, port)]
        for policy, rule in ops:
            peers = rule.get("from") or [{}]
            if not all(_from_monitoring(peer) for peer in peers):
                problems.append(
                    f"{policy}: admits the operator's port {port} of {where} from beyond the "
                    f"{MONITORING_NAMESPACE} namespace (a `from` of namespaceSelector "
                    f"{NAMESPACE_LABEL}: {MONITORING_NAMESPACE} only)"
                )
        if not ops:
            problems.append(
                f"{where}: no NetworkPolicy admits its operator's port {port} from the "
                f"{MONITORING_NAMESPACE} namespace: Prometheus cannot scrape it"
            )
        for svc, target, number in _served_ports(objects, pod):
            if not any(_admits(rule, target, number) for _, rule in rules):
                problems.append(f"{where}: the clients of {svc} are refused: admit port {target}")
    return problems


def _served_ports(objects: list[Obj], pod: Obj) -> Iterator[tuple[str, str, int]]:
    """(Service, target port's name, its number) of every Service port reaching ``pod``."""
    named = {
        p["name"]: p["containerPort"]
        for c in pod["spec"]["containers"]
        for p in c.get("ports", [])
        if "name" in p
    }
    for svc in _of(objects, "Service"):
        if _selects({"matchLabels": svc["spec"].get("selector", {})}, pod["metadata"]["labels"]):
            for entry in svc["spec"].get("ports", []):
                target = entry.get("targetPort", entry["port"])
                number = named.get(target, target)
                yield _name(svc), str(target), number if isinstance(number, int) else 0
