"""The test renderer itself: Kustomize semantics for the subset, and refusal outside it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .kustomize import KustomizeError, Obj, apply_json6902, merge, render

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.local/app:1.0
          env:
            - {name: A, value: "1"}
            - {name: B, value: "2"}
        - name: sidecar
          image: busybox
"""
SCALED = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: web
spec:
  maxReplicaCount: 4
  triggers:
    - {type: kafka, metadata: {topic: a}}
    - {type: cpu, metadata: {value: "50"}}
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def base(tmp_path: Path) -> Path:
    return write(
        tmp_path / "base",
        {
            "kustomization.yaml": "resources: [app.yaml]\n",
            "app.yaml": DEPLOYMENT + "---\n" + SCALED,
        },
    )


def overlay(tmp_path: Path, kustomization: str, **files: str) -> list[Obj]:
    base(tmp_path)
    write(tmp_path / "overlay", {"kustomization.yaml": kustomization, **files})
    return render(tmp_path / "overlay")


def test_strategic_merge_merges_containers_and_env_by_name(tmp_path: Path) -> None:
    patch = """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          template:
            spec:
              containers:
                - name: app
                  env:
                    - {name: B, value: "20"}
                    - {name: C, value: "3"}
        """
    objects = overlay(
        tmp_path, "resources: [../base]\npatches: [{path: p.yaml}]\n", **{"p.yaml": patch}
    )
    containers = objects[0]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert containers[0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert containers[0]["image"] == "registry.local/app:1.0"


def test_custom_resources_get_json_merge_patch_lists_replaced(tmp_path: Path) -> None:
    patch = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: web}\nspec:\n  triggers: [{type: cpu, metadata: {value: '70'}}]\n"
    objects = overlay(
        tmp_path, "resources: [../base]\npatches: [{path: p.yaml}]\n", **{"p.yaml": patch}
    )
    assert objects[1]["spec"] == {
        "maxReplicaCount": 4,
        "triggers": [{"type": "cpu", "metadata": {"value": "70"}}],
    }


def test_json6902_targets_by_kind_and_name_regex(tmp_path: Path) -> None:
    kustomization = """\
        resources: [../base]
        patches:
          - target: {kind: ScaledObject, name: "w.*"}
            patch: |-
              - {op: replace, path: /spec/maxReplicaCount, value: 2}
              - {op: add, path: /spec/triggers/-, value: {type: x, metadata: {}}}
              - {op: remove, path: /spec/triggers/1}
              - {op: test, path: /spec/triggers/0/metadata/topic, value: a}
        """
    objects = overlay(tmp_path, kustomization)
    spec = objects[1]["spec"]
    assert spec["maxReplicaCount"] == 2
    assert [t["type"] for t in spec["triggers"]] == ["kafka", "x"]


def test_images_namespace_and_target_ignoring_patch_name(tmp_path: Path) -> None:
    kustomization = """\
        resources: [../base]
        namespace: prod
        images: [{name: registry.local/app, newName: ghcr.io/x/app, newTag: "2.0"}]
        patches:
          - target: {kind: Deployment}
            patch: |-
              apiVersion: apps/v1
              kind: Deployment
              metadata: {name: ignored}
              spec: {revisionHistoryLimit: 3}
        """
    objects = overlay(tmp_path, kustomization)
    images = [c["image"] for c in objects[0]["spec"]["template"]["spec"]["containers"]]
    assert images == ["ghcr.io/x/app:2.0", "busybox"]
    assert objects[0]["spec"]["revisionHistoryLimit"] == 3
    assert {o["metadata"]["namespace"] for o in objects} == {"prod"}
    assert objects[0]["metadata"]["name"] == "web"


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("resources: [../base]\nnamePrefix: x-\n", "namePrefix"),
        ("resources: [../base]\nconfigMapGenerator: []\n", "configMapGenerator"),
        ("resources: [../base, missing.yaml]\n", "does not exist"),
        ("resources: [../base, ../base]\n", "defined twice"),
        ("resources: [../base]\nimages: [{name: nothing, newTag: '1'}]\n", "matches no container"),
        (
            "resources: [../base]\npatches: [{target: {kind: Service}, patch: '[{op: remove, path: /x}]'}]\n",
            "matches no object",
        ),
        (
            "resources: [../base]\npatches: [{target: {kind: Deployment}, patch: '[{op: remove, path: /nope}]'}]\n",
            "does not exist",
        ),
        (
            "resources: [../base]\npatches: [{target: {kind: Deployment}, patch: '[{op: move, path: /spec}]'}]\n",
            "not supported",
        ),
        (
            "resources: [../base]\npatches: [{target: {labelSelector: a=b}, patch: '[]'}]\n",
            "not supported",
        ),
    ],
)
def test_refuses_what_it_does_not_render_faithfully(
    tmp_path: Path, kustomization: str, message: str
) -> None:
    with pytest.raises(KustomizeError, match=message):
        overlay(tmp_path, kustomization)


def test_refuses_list_merges_it_does_not_know() -> None:
    with pytest.raises(KustomizeError, match="'args'"):
        merge({"args": ["a"]}, {"args": ["b"]}, strategic=True)
    with pytest.raises(KustomizeError, match="directives"):
        merge({"a": 1}, {"$patch": "delete"}, strategic=True)
    assert merge({"args": ["a"], "x": 1}, {"args": ["b"], "x": None}, strategic=False) == {
        "args": ["b"]
    }


def test_json6902_failed_test_operation_is_an_error() -> None:
    with pytest.raises(KustomizeError, match="test of /a failed"):
        apply_json6902({"a": 1}, {"op": "test", "path": "/a", "value": 2})
    with pytest.raises(KustomizeError, match="must start with /"):
        apply_json6902({"a": 1}, {"op": "remove", "path": "a"})
