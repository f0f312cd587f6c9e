"""The deploy/ side of issue 20: every Deployment has a working auth choice, the console proxy
overlay renders and trusts only its sidecar, and each Kafka principal is declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from workers.runtime.door.auth import auth_problem
from workers.runtime.settings import Settings

from .k8s_invariants import config
from .k8s_schema import schema_problems
from .kustomize import render
from .project import K8S, OVERLAYS

KAFKA_USERS = K8S.parent / "kafka" / "kafka-users.yaml"


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_every_overlay_configures_a_working_auth_choice() -> None:
    for overlay in OVERLAYS:
        settings: Settings = config(list(render(K8S / "overlays" / overlay)))
        assert settings.auth == "jwt" and auth_problem(settings) is None, overlay


def test_the_console_proxy_overlay_trusts_only_its_sidecar() -> None:
    objects = list(render(K8S / "console-proxy"))
    assert schema_problems(objects) == []
    console = next(
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "eventfleet-console"
    )
    containers = {c["name"]: c for c in console["spec"]["template"]["spec"]["containers"]}
    env = env_of(containers["eventfleet"])
    assert (
        env["EVENTFLEET_AUTH"] == "proxy"
        and env["EVENTFLEET_AUTH_TRUSTED_PROXIES"] == "127.0.0.1/32"
    )
    proxy_args = containers["oauth2-proxy"]["args"]
    operator_port = config(objects).operator_port  # the console's pages are served there only
    assert f"--upstream=http://127.0.0.1:{operator_port}/console/" in proxy_args
    assert "--pass-user-headers=true" in proxy_args
    cookie = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for a in proxy_args if a.startswith("--cookie")
    }
    assert cookie["--cookie-name"].startswith("__Host-")  # host-only: no sibling sets it
    assert "--cookie-domain" not in cookie  # __Host- forbids one; a domain widens it
    assert (
        cookie["--cookie-secure"],
        cookie["--cookie-httponly"],
        cookie["--cookie-samesite"],
    ) == ("true", "true", "strict")
    assert {"--skip-auth-strip-headers=true", "--pass-host-header=true"} <= set(proxy_args)
    service = next(
        o
        for o in objects
        if o["kind"] == "Service" and o["metadata"]["name"] == "eventfleet-console"
    )
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["proxy"]
    others = [o for o in objects if o["kind"] == "Deployment" and o is not console]
    assert others and all("EVENTFLEET_AUTH" not in env_of(c) for o in others
                          for c in o["spec"]["template"]["spec"]["containers"])  # fmt: skip


def test_one_kafka_principal_per_role_with_scoped_acls() -> None:
    users = [u for u in yaml.safe_load_all(KAFKA_USERS.read_text()) if u]
    names = {u["metadata"]["name"] for u in users}
    assert names == {f"eventfleet-{r}" for r in (
        "commands", "appender", "snapshotter", "forwarder", "projection", "bridge", "pm", "lag",
        "topics",
    )}  # fmt: skip
    for user in users:
        acls = user["spec"]["authorization"]["acls"]
        assert acls, user["metadata"]["name"]
        for acl in acls:
            assert "All" not in acl["operations"], user["metadata"]["name"]
            name = acl["resource"]["name"]
            assert name.startswith(("eventfleet", "kafka-cluster")), name
    writers = {u["metadata"]["name"] for u in users for a in u["spec"]["authorization"]["acls"]
               if a["resource"]["name"] == "eventfleet.commands" and "Write" in a["operations"]}  # fmt: skip
    assert writers == set()  # nobody in the fleet produces commands: clients do, under their own


def test_deploy_readme_names_every_principal() -> None:
    text = Path(K8S.parent / "README.md").read_text()
    for user in yaml.safe_load_all(KAFKA_USERS.read_text()):
        if user:
            assert f"`{user['metadata']['name']}`" in text
