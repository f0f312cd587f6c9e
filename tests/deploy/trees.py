"""The deploy trees the manifest suites render: ``base`` and each overlay, rendered once per
run; each caller gets a copy of its own, and ``find`` picks one object by kind and name."""

from __future__ import annotations

import copy
from functools import cache

from .kustomize import Obj, render
from .project import K8S, OVERLAYS

TREES = ("base", *(f"overlays/{name}" for name in OVERLAYS))


@cache
def _rendered(tree: str) -> tuple[Obj, ...]:
    return tuple(render(K8S / tree))


def rendered(tree: str) -> list[Obj]:
    """A private copy of the rendered tree, free to break."""
    return copy.deepcopy(list(_rendered(tree)))


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    """The object of ``kind`` named ``name`` (StopIteration if there is none)."""
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
