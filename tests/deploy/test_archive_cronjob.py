"""The archive CronJob beside the fleet: in every tree, bounded, never two at once, checked offline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from workers.cli.args import parser
from workers.runtime.loading import load_domains

from .k8s_invariants import config, manifest_problems
from .k8s_schema import schema_problems
from .kustomize import Obj, pod_containers
from .trees import TREES, find, rendered


def archive(objects: list[Obj]) -> Obj:
    return find(objects, "CronJob", "eventfleet-archive")


@pytest.mark.parametrize("tree", TREES)
def test_every_tree_runs_the_archive_in_bounded_batches_one_run_at_a_time(tree: str) -> None:
    cron = archive(rendered(tree))
    assert schema_problems([cron]) == []
    spec, job = cron["spec"], cron["spec"]["jobTemplate"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    (container,) = pod_containers(cron)
    args = parser().parse_args(container["args"])  # the real CLI accepts them
    assert args.command == "archive" and not args.dry_run and 1 <= args.batch <= 1000
    minute, hour, *_ = spec["schedule"].split()
    assert minute.isdigit() and hour == "*"  # hourly: a run is stopped before the next starts
    assert 0 < job["activeDeadlineSeconds"] < 3600
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    (ensure,) = pod_containers(find(rendered(tree), "Job", "eventfleet-topics-ensure"))
    assert container["image"] == ensure["image"]  # the fleet's image, retagged with it


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda c: c.update(args=["archive", "--bacth", "500"]), "is neither"),
        (lambda c: c.update(command=["sh"]), "set args, not command"),
        (lambda c: c.update(resources={}), "sets no requests.cpu"),
        (
            lambda c: c.update(envFrom=[{"configMapRef": {"name": "other"}}]),
            "envFrom must reference",
        ),
    ],
)
def test_a_broken_archive_container_is_named(breakage: Callable[[Obj], None], message: str) -> None:
    objects = rendered("base")
    assert manifest_problems(objects) == []
    (container,) = pod_containers(archive(objects))
    breakage(container)
    problems = manifest_problems(objects)
    assert any("CronJob/eventfleet-archive" in p and message in p for p in problems), problems


def test_a_misspelt_cronjob_field_fails_the_schema() -> None:
    cron = archive(rendered("base"))
    cron["spec"]["concurrencyPolicyy"] = "Forbid"
    assert schema_problems([cron]) != []


@pytest.mark.parametrize("tree", TREES)
def test_every_pod_mounts_the_master_key_the_personal_fields_need(tree: str) -> None:
    objects = rendered(tree)
    settings = config(objects)
    assert settings.master_key_file.startswith("/etc/eventfleet/master-key/")
    assert any(d.personal is not None for d in load_domains(settings.domains))
    pods = [o for o in objects if o["kind"] in ("Deployment", "Job", "CronJob")]
    for pod in pods:
        (container,) = pod_containers(pod)
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/etc/eventfleet/master-key" in mounts, pod["metadata"]["name"]
    commands = find(objects, "Deployment", "eventfleet-commands")
    unmounted = commands["spec"]["template"]["spec"]["containers"][0]
    unmounted["volumeMounts"] = [m for m in unmounted["volumeMounts"] if m["name"] != "master-key"]
    assert any(
        "Deployment/eventfleet-commands: EVENTFLEET_MASTER_KEY_FILE" in p
        for p in manifest_problems(objects)
    )
