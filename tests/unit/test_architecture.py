"""The rooms of ``workers/`` and the direction between them, read from the imports; no cycles.

From the bottom up: ``topics`` ← ``snapshot_rules`` ← ``workers.ports``, ``workers.metrics`` and
``workers.secrets``
← ``workers.roles`` and ``workers.adapters`` ← the products ``workers.storage`` and
``workers.bus`` ← ``workers.cqrs`` (seed 003 puts CQRS on the storage) ← ``workers.runtime``
← ``workers.devtools`` ← ``workers.cli``; on top ``workers.examples``, which imports the
framework and which no other room imports. Role logic imports no driver; nothing below the CLI
imports devtools.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests.unit.test_layering import ROOT, imported_modules, module_name

FOUNDATION = ("topics", "snapshot_rules", "workers.ports", "workers.metrics", "workers.secrets")
ALLOWED: dict[str, tuple[str, ...]] = {
    "workers": FOUNDATION,
    "topics": ("topics",),
    "snapshot_rules": ("topics", "snapshot_rules"),
    "workers.ports": FOUNDATION,
    "workers.metrics": FOUNDATION,
    "workers.roles": (*FOUNDATION, "workers.roles"),
    "workers.adapters": (*FOUNDATION, "workers.bus", "workers.adapters"),
    "workers.cqrs": (*FOUNDATION, "workers.roles", "workers.storage", "workers.cqrs"),
    "workers.bus": (*FOUNDATION, "workers.bus"),
    "workers.storage": (*FOUNDATION, "workers.roles", "workers.adapters", "workers.storage"),
    "workers.runtime": (
        *FOUNDATION, "workers.roles", "workers.adapters", "workers.cqrs", "workers.bus",
        "workers.storage", "workers.runtime",
    ),
    "workers.devtools": (
        *FOUNDATION, "workers.roles", "workers.adapters", "workers.cqrs", "workers.bus",
        "workers.storage", "workers.runtime", "workers.devtools",
    ),
    "workers.cli": (
        *FOUNDATION, "workers.roles", "workers.adapters", "workers.cqrs", "workers.bus",
        "workers.storage", "workers.runtime", "workers.devtools", "workers.cli",
    ),
    "workers.examples": (
        *FOUNDATION, "workers.roles", "workers.adapters", "workers.cqrs", "workers.bus",
        "workers.storage", "workers.runtime", "workers.examples",
    ),
}  # fmt: skip
DRIVERS = ("faust", "mode", "aiokafka", "pymongo", "bson", "motor", "redis", "nats", "aiohttp")
NO_DRIVERS = ("workers.roles", "workers.ports", "workers.cqrs")


def room(module: str) -> str:
    """The longest room name that ``module`` is in."""
    found = [r for r in ALLOWED if module == r or module.startswith(r + ".")]
    if not found:
        raise AssertionError(f"{module} is in no room: add it to ALLOWED or move it into one")
    return max(found, key=len)


def source_files() -> list[Path]:
    files = [p for top in ("topics", "snapshot_rules", "workers") for p in (ROOT / top).rglob("*.py")]
    return sorted(files)


@functools.cache
def graph() -> dict[str, set[str]]:
    """Module → the project modules it imports; ``from pkg import mod`` is an edge to ``pkg.mod``."""
    modules = {module_name(p): p for p in source_files()}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        source = path.read_text()
        imported = imported_modules(source, name, is_package=path.name == "__init__.py")
        imported |= _submodules(source, modules)
        targets = set()
        for target in imported:
            while target and target not in modules:
                target = target.rpartition(".")[0]  # `from pkg.mod import name`: the module
            if target and target != name:
                targets.add(target)
        edges[name] = {t for t in targets if not _only_submodule_import(source, t, modules)}
    return edges


def _submodules(source: str, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    found.add(f"{node.module}.{alias.name}")
    return found


def _only_submodule_import(source: str, package: str, modules: dict[str, Path]) -> bool:
    """``from pkg import mod`` (every name a submodule) does not depend on ``pkg/__init__``."""
    names = [
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module == package and not node.level
        for alias in node.names
    ]
    return bool(names) and all(f"{package}.{n}" in modules for n in names)


def test_every_module_is_in_a_room() -> None:
    for module in graph():
        room(module)


def upward(module: str, targets: set[str]) -> list[str]:
    """The imports of ``module`` its room may not make."""
    allowed = ALLOWED[room(module)]
    return sorted(t for t in targets if not any(t == a or t.startswith(a + ".") for a in allowed))


@pytest.mark.parametrize("module", sorted(graph()), ids=str)
def test_imports_point_down_or_sideways_within_a_room(module: str) -> None:
    wrong = upward(module, graph()[module])
    assert wrong == [], f"{module} ({room(module)}) may not import {wrong}"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: module_name(p))
def test_role_logic_ports_and_cqrs_import_no_driver(path: Path) -> None:
    module = module_name(path)
    if not any(module == r or module.startswith(r + ".") for r in NO_DRIVERS):
        return
    drivers = sorted(
        name for name in imported_modules(path.read_text(), module) if name.split(".")[0] in DRIVERS
    )
    assert drivers == [], f"{module} imports drivers {drivers}: it must go through a port"


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    cycles = [c for c in strongly_connected(edges) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_devtools_is_imported_only_by_the_cli() -> None:
    importers = sorted(
        module
        for module, targets in graph().items()
        if any(t.startswith("workers.devtools") for t in targets)
        and not module.startswith(("workers.devtools", "workers.cli"))
    )
    assert importers == []


def test_the_examples_are_imported_by_no_other_room() -> None:
    importers = sorted(
        module
        for module, targets in graph().items()
        if any(t.startswith("workers.examples") for t in targets)
        and not module.startswith("workers.examples")
    )
    assert importers == []


def test_the_checks_catch_an_upward_import_and_a_cycle() -> None:
    assert upward("workers.roles.commands", {"workers.runtime.settings", "workers.ports"}) == [
        "workers.runtime.settings"
    ]
    assert upward("workers.adapters.mongo.stores", {"workers.roles.state"}) == ["workers.roles.state"]
    assert upward("workers.runtime.http", {"workers.devtools.dev"}) == ["workers.devtools.dev"]
    components = strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    assert sorted(sorted(c) for c in components) == [["a", "b"], ["c"]]


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative, so deep graphs cannot overflow)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components
