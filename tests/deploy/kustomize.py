"""A Kustomize renderer for exactly the subset deploy/k8s uses; anything else is an error.

Supported kustomization keys: ``resources`` (files and directories), ``namespace``,
``images`` and ``patches`` (strategic merge or JSON 6902, from ``path`` or inline
``patch``, with an optional ``target`` of kind, name regex, group and version). Strategic
merge merges lists by key only where Kubernetes does and this module knows the key
(containers, env, volumes, volumeMounts); any other list in a patch of a built-in kind is
rejected rather than guessed. Custom resources get JSON merge patch semantics, as in
Kustomize. Keeping the manifests inside this subset is what lets the suite render them
without a kustomize binary.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

SUPPORTED_KEYS = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})
# Kinds Kustomize patches strategically; everything else (CRDs) gets a JSON merge patch.
BUILTIN_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling"})
# Strategic-merge list keys, by list field name (the Kubernetes patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}


class KustomizeError(ValueError):
    """The kustomization uses something outside the supported subset, or is inconsistent."""


def render(directory: Path) -> list[Obj]:
    """Every object the kustomization in ``directory`` produces, in resource order."""
    spec = _load_kustomization(directory)
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        objects.extend(_load_resource(directory / entry))
    for patch in spec.get("patches", []):
        _apply_patch(objects, patch, directory)
    for image in spec.get("images", []):
        _set_image(objects, image)
    if "namespace" in spec:
        for obj in objects:
            obj["metadata"]["namespace"] = spec["namespace"]
    _check_unique(objects)
    return objects


def _load_kustomization(directory: Path) -> Obj:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory} has no kustomization.yaml")
    spec = yaml.safe_load(path.read_text())
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(
            f"{path} uses {sorted(unknown)}, which the test renderer does not support; "
            "stay within resources, namespace, images and patches"
        )
    return dict(spec)


def _load_resource(path: Path) -> list[Obj]:
    if path.is_dir():
        return render(path)
    if not path.is_file():
        raise KustomizeError(f"resource {path} does not exist")
    objects = [obj for obj in yaml.safe_load_all(path.read_text()) if obj is not None]
    for obj in objects:
        if not isinstance(obj, dict) or not {"apiVersion", "kind", "metadata"} <= obj.keys():
            raise KustomizeError(f"{path} holds a document that is not a Kubernetes object")
    return objects


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def object_id(obj: Obj) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name): what Kustomize requires to be unique."""
    group, _ = _group_version(obj["apiVersion"])
    meta = obj["metadata"]
    return group, obj["kind"], meta.get("namespace", ""), meta["name"]


def _check_unique(objects: list[Obj]) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        key = object_id(obj)
        if key in seen:
            raise KustomizeError(f"{key} is defined twice")
        seen.add(key)


def _matches(obj: Obj, target: Obj) -> bool:
    unknown = set(target) - {"kind", "name", "group", "version"}
    if unknown:
        raise KustomizeError(f"patch target selector {sorted(unknown)} is not supported")
    group, version = _group_version(obj["apiVersion"])
    return (
        target.get("kind", obj["kind"]) == obj["kind"]
        and target.get("group", group) == group
        and target.get("version", version) == version
        and re.fullmatch(target.get("name", ".*"), obj["metadata"]["name"]) is not None
    )


def _apply_patch(objects: list[Obj], entry: Obj, directory: Path) -> None:
    if set(entry) - {"path", "patch", "target"} or ("path" in entry) == ("patch" in entry):
        raise KustomizeError(f"patch entry {entry} needs exactly one of path or patch")
    text = (directory / entry["path"]).read_text() if "path" in entry else entry["patch"]
    body = yaml.safe_load(text)
    target = entry.get("target")
    if isinstance(body, list):
        if target is None:
            raise KustomizeError("a JSON 6902 patch needs a target")
        chosen = [obj for obj in objects if _matches(obj, target)]
        for obj in chosen:
            for op in body:
                apply_json6902(obj, op)
    elif isinstance(body, dict):
        selector = target or {
            "kind": body["kind"],
            "name": re.escape(body["metadata"]["name"]),
        }
        chosen = [obj for obj in objects if _matches(obj, selector)]
        patch = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        if target is not None:
            # Kustomize ignores the patch's own name when a target selects the objects.
            patch["metadata"] = {k: v for k, v in patch["metadata"].items() if k != "name"}
        for obj in chosen:
            builtin = _group_version(obj["apiVersion"])[0] in BUILTIN_GROUPS
            merged = merge(obj, patch, strategic=builtin)
            obj.clear()
            obj.update(merged)
    else:
        raise KustomizeError(f"patch {entry} is neither a list of operations nor an object")
    if not chosen:
        raise KustomizeError(f"patch {entry} matches no object")


def merge(base: Any, patch: Any, *, strategic: bool, field: str = "") -> Any:
    """Strategic merge (``strategic``) or JSON merge patch of ``patch`` onto ``base``."""
    if isinstance(patch, dict):
        if any(key.startswith("$") for key in patch):
            raise KustomizeError(f"patch directives {sorted(patch)} are not supported")
        result = copy.deepcopy(base) if isinstance(base, dict) else {}
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = merge(result.get(key), value, strategic=strategic, field=key)
        return result
    if isinstance(patch, list) and strategic:
        if field not in MERGE_KEYS:
            raise KustomizeError(
                f"strategic merge of list {field!r} is not supported by the test renderer; "
                "use a JSON 6902 patch"
            )
        return _merge_list(base or [], patch, MERGE_KEYS[field])
    return copy.deepcopy(patch)


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    result = copy.deepcopy(base)
    for item in patch:
        index = next((i for i, old in enumerate(result) if old.get(key) == item[key]), None)
        if index is None:
            result.append(copy.deepcopy(item))
        else:
            result[index] = merge(result[index], item, strategic=True)
    return result


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer {path!r} must start with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _step(node: Any, part: str, path: str) -> Any:
    try:
        return node[int(part)] if isinstance(node, list) else node[part]
    except (KeyError, IndexError, ValueError):
        raise KustomizeError(f"JSON pointer {path!r} does not exist") from None


def apply_json6902(obj: Obj, op: Obj) -> None:
    """Apply one add / remove / replace / test operation in place."""
    parts = _pointer(op["path"])
    parent: Any = obj
    for part in parts[:-1]:
        parent = _step(parent, part, op["path"])
    last = parts[-1]
    kind = op["op"]
    if kind == "test":
        if _step(parent, last, op["path"]) != op["value"]:
            raise KustomizeError(f"test of {op['path']} failed")
    elif kind == "remove":
        _step(parent, last, op["path"])
        del parent[int(last) if isinstance(parent, list) else last]
    elif kind == "replace":
        _step(parent, last, op["path"])
        parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op["value"])
    elif kind == "add":
        value = copy.deepcopy(op["value"])
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), value)
        else:
            parent[last] = value
    else:
        raise KustomizeError(f"JSON 6902 op {kind!r} is not supported")


def pod_containers(obj: Obj) -> Iterator[Obj]:
    """Containers and init containers of a Deployment's, Job's or CronJob's pod template."""
    if obj["kind"] not in ("Deployment", "Job", "CronJob"):
        return
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    pod = spec["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


def _set_image(objects: list[Obj], image: Obj) -> None:
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise KustomizeError(f"images entry {image} has unsupported fields")
    hits = 0
    for obj in objects:
        for container in pod_containers(obj):
            ref = container["image"]
            name = ref.split("@", 1)[0]
            if ":" in name.rsplit("/", 1)[-1]:
                name = name.rsplit(":", 1)[0]
            if name != image["name"]:
                continue
            hits += 1
            new = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{new}@{image['digest']}"
            elif "newTag" in image:
                container["image"] = f"{new}:{image['newTag']}"
            else:
                container["image"] = new + ref[len(name) :]
    if hits == 0:
        raise KustomizeError(f"images entry {image['name']!r} matches no container")
