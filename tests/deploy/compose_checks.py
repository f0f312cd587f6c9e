"""Checks of deploy/compose.yaml: roles wired to the real services they name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from topics.errors import ConfigError
from workers.runtime.settings import Settings

from .project import check_command, setting_names

_DURATION = re.compile(r"^(?:(\d+)m)?(?:(\d+)s)?$")


def _seconds(text: str) -> int:
    match = _DURATION.match(text)
    if not match or not text:
        raise ValueError(f"{text!r} is not a duration like 30s or 1m30s")
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def fleet_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the eventfleet image."""
    return {
        name: svc
        for name, svc in doc.get("services", {}).items()
        if str(svc.get("image", "")).startswith("eventfleet:") or "build" in svc
    }


def compose_problems(doc: dict[str, Any], directory: Path) -> list[str]:
    """Every problem of a compose document whose relative paths start at ``directory``."""
    services = doc.get("services", {})
    problems: list[str] = []
    fleet = fleet_services(doc)
    if not fleet:
        return ["no service runs the eventfleet image"]
    for name, svc in fleet.items():
        problems += [f"service {name}: {p}" for p in _fleet_service(name, svc, services, directory)]
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith(".") and not (directory / source).exists():
                problems.append(f"service {name}: mounts {source}, which does not exist")
    return problems + _mongo_problems(services) + _kafka_problems(services, fleet)


def _fleet_service(
    name: str, svc: dict[str, Any], services: dict[str, Any], directory: Path
) -> list[str]:
    build = svc.get("build", {})
    dockerfile = directory / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    problems = [] if dockerfile.is_file() else [f"builds from {dockerfile}, which does not exist"]
    problems += check_command(list(svc.get("command", [])))
    env = {str(k): str(v) for k, v in svc.get("environment", {}).items()}
    problems += [f"{k} is not a setting" for k in env if k not in setting_names()]
    try:
        settings = Settings.from_env(env)
    except ConfigError as e:
        return [*problems, str(e)]
    if not settings.kafka_idempotence:
        problems.append("real Kafka: set EVENTFLEET_KAFKA_IDEMPOTENCE=true")
    if settings.http_host != "0.0.0.0":
        problems.append("EVENTFLEET_HTTP_HOST must be 0.0.0.0 in a container")
    problems += _operator_port_problems(svc, settings)
    if _seconds(str(svc.get("stop_grace_period", "10s"))) <= settings.drain_timeout_s:
        problems.append("stop_grace_period must exceed EVENTFLEET_DRAIN_TIMEOUT_S")
    for url in (settings.kafka_url, settings.mongo_url, settings.redis_url, settings.nats_url):
        for host in urlsplit(url).netloc.rsplit("@", 1)[-1].split(","):
            if host.split(":")[0] not in services:
                problems.append(f"{url} names {host}, which is not a compose service")
    for dep in svc.get("depends_on", {}):
        if dep not in services:
            problems.append(f"depends on {dep}, which is not a service")
    if svc.get("command", [None])[0] == "worker":
        ensure = [
            n for n, s in services.items() if list(s.get("command", [])) == ["topics", "ensure"]
        ]
        conditions = {svc.get("depends_on", {}).get(n, {}).get("condition") for n in ensure}
        if conditions != {"service_completed_successfully"}:
            problems.append("workers must wait for `topics ensure` to complete successfully")
    return problems


LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _operator_port_problems(svc: dict[str, Any], settings: Settings) -> list[str]:
    """The probes, /metrics and the console on a port of their own, published (if at all) on
    the host's loopback only: a laptop's API may be reachable by others, its console not."""
    port = settings.operator_port
    if port is None or port == settings.http_port:
        return ["set EVENTFLEET_OPERATOR_PORT, apart from EVENTFLEET_HTTP_PORT (docs/security.md)"]
    problems = []
    for mapping in svc.get("ports", []):
        *host, container = str(mapping).rsplit(":", 2)
        if container.split("/")[0] == str(port) and (len(host) < 2 or host[0] not in LOOPBACK):
            problems.append(
                f"publishes the operator's port {port} beyond the host's loopback ({mapping}); "
                f"map it as 127.0.0.1:<host port>:{port}"
            )
    return problems


def _mongo_problems(services: dict[str, Any]) -> list[str]:
    """MongoDB runs as a replica set that initiates itself, and the fleet names it."""
    mongo = services.get("mongo", {})
    command = list(mongo.get("command", []))
    if "--replSet" not in command:
        return ["service mongo: run with --replSet; transactions need a replica set"]
    name = command[command.index("--replSet") + 1]
    check = " ".join(mongo.get("healthcheck", {}).get("test", []))
    problems = []
    if "rs.initiate" not in check or f"'{name}'" not in check:
        problems.append(f"service mongo: the healthcheck must rs.initiate replica set {name}")
    for svc_name, svc in fleet_services({"services": services}).items():
        url = svc.get("environment", {}).get("EVENTFLEET_MONGO_URL", "")
        if parse_qs(urlsplit(url).query).get("replicaSet") != [name]:
            problems.append(f"service {svc_name}: EVENTFLEET_MONGO_URL must name replicaSet={name}")
    return problems


def _kafka_problems(services: dict[str, Any], fleet: dict[str, Any]) -> list[str]:
    """The fleet bootstraps from a listener Kafka advertises under a reachable name."""
    env = services.get("kafka", {}).get("environment", {})
    advertised = {
        urlsplit(a).netloc for a in str(env.get("KAFKA_ADVERTISED_LISTENERS", "")).split(",")
    }
    problems = []
    for name, svc in fleet.items():
        url = svc.get("environment", {}).get("EVENTFLEET_KAFKA_URL", "")
        if urlsplit(url).netloc not in advertised:
            problems.append(f"service {name}: {url} is not an advertised Kafka listener")
    if str(env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")) != "false":
        problems.append("service kafka: disable auto-creation; `topics ensure` creates topics")
    return problems
