"""The rooms of the project and the one direction between them, read from the imports; no cycles.

From the bottom up: ``topics`` ← ``snapshot_rules`` ← ``workers.metric_kinds`` (how a metric is
declared and made) ← the foundation (``workers.ports``,
``workers.metrics``, ``workers.secrets``) ← ``workers.roles`` (role logic on the ports: what the sides share, then the command, append
and read sides side by side, then the operator jobs) ←
``workers.bus`` and ``workers.storage`` (what the buses share; EventSourcedStorage on its
document-store port) ← ``workers.cqrs`` (on the storage) ← ``workers.adapters`` (one package per
technology, implementing the ports of the rooms below) ← ``workers.stream`` (the Faust app and its
consumer plumbing: the one home of their internals) ← ``workers.runtime`` (composes them, owns
the process and its door) ← ``workers.http`` (what it serves: the API, live routes, the console)
← ``workers.devtools`` and ``workers.client`` ← ``workers.cli`` ← ``workers.examples``. A module
imports its own room and the rooms below it, nothing above: so nothing imports the examples. Two rules more, with no
exceptions: the drivers (pymongo, bson, redis, aiokafka, nats) are imported only under
``workers/adapters`` and ``workers/devtools``, and the runtime's libraries (faust, mode,
aiohttp) by no room below the stream room; and only the CLI imports devtools.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imports import ROOT, imported_modules, module_name

FLOORS: tuple[tuple[str, ...], ...] = (
    ("topics",),
    ("snapshot_rules",),
    ("workers.metric_kinds",),
    ("workers", "workers.ports", "workers.metrics", "workers.secrets"),
    ("workers.roles",),
    ("workers.roles.command", "workers.roles.append", "workers.roles.read"),
    ("workers.roles.ops", "workers.roles.process"),
    ("workers.bus", "workers.storage"),
    ("workers.cqrs",),
    ("workers.adapters",),
    ("workers.stream",),
    ("workers.runtime",),
    ("workers.http",),
    ("workers.devtools", "workers.client"),
    ("workers.cli",),
    ("workers.examples",),
)
"""The rooms, floor by floor from the ground up; rooms on one floor do not import each other."""
ROOMS = tuple(r for floor in FLOORS for r in floor)
DRIVERS = ("pymongo", "bson", "motor", "redis", "aiokafka", "nats")
DRIVER_ROOMS = ("workers.adapters", "workers.devtools")
RUNTIME_LIBRARIES = ("faust", "mode", "aiohttp")


def floor(room: str) -> int:
    return next(i for i, rooms in enumerate(FLOORS) if room in rooms)


def inside(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def room(module: str) -> str:
    """The longest room name that ``module`` is in."""
    found = [r for r in ROOMS if inside(module, r)]
    if not found:
        raise AssertionError(f"{module} is in no room: add it to FLOORS or move it into one")
    return max(found, key=len)


def source_files() -> list[Path]:
    files = [
        p for top in ("topics", "snapshot_rules", "workers") for p in (ROOT / top).rglob("*.py")
    ]
    return sorted(files)


def modules() -> dict[str, Path]:
    """Every project module by name (what the graph has a node for: read at collection)."""
    return {module_name(p): p for p in source_files()}


@functools.cache
def graph() -> dict[str, set[str]]:
    """Module → the project modules it imports; ``from pkg import mod`` is an edge to ``pkg.mod``.

    Built when a test first asks, not at collection (every pytest worker collects this file):
    each file's ``from`` imports are found once, not once more per module it imports."""
    found = modules()
    edges: dict[str, set[str]] = {}
    for name, path in found.items():
        source = path.read_text()
        froms = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)]
        imported = imported_modules(source, name, is_package=path.name == "__init__.py")
        imported |= _submodules(froms, found)
        targets = set()
        for target in imported:
            while target and target not in found:
                target = target.rpartition(".")[0]  # `from pkg.mod import name`: the module
            if target and target != name:
                targets.add(target)
        edges[name] = {t for t in targets if not _only_submodule_import(froms, t, found)}
    return edges


def _submodules(froms: list[ast.ImportFrom], modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in froms:
        if node.module and not node.level:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    found.add(f"{node.module}.{alias.name}")
    return found


def _only_submodule_import(
    froms: list[ast.ImportFrom], package: str, modules: dict[str, Path]
) -> bool:
    """``from pkg import mod`` (every name a submodule) does not depend on ``pkg/__init__``."""
    names = [
        alias.name
        for node in froms
        if node.module == package and not node.level
        for alias in node.names
    ]
    return bool(names) and all(f"{package}.{n}" in modules for n in names)


def test_every_module_is_in_a_room() -> None:
    for module in graph():
        room(module)


def upward(module: str, targets: set[str]) -> list[str]:
    """The imports of ``module`` its room may not make: a room above it, or beside it."""
    own = room(module)
    return sorted(t for t in targets if room(t) != own and floor(room(t)) >= floor(own))


@pytest.mark.parametrize("module", sorted(modules()), ids=str)
def test_imports_point_down_or_sideways_within_a_room(module: str) -> None:
    wrong = upward(module, graph()[module])
    assert wrong == [], f"{module} ({room(module)}) may not import {wrong}"


def libraries(path: Path) -> set[str]:
    """The top-level names of everything ``path`` imports."""
    return {name.split(".")[0] for name in imported_modules(path.read_text(), module_name(path))}


@pytest.mark.parametrize("path", source_files(), ids=lambda p: module_name(p))
def test_drivers_are_imported_only_by_adapters_and_devtools(path: Path) -> None:
    if any(inside(module_name(path), r) for r in DRIVER_ROOMS):
        return
    drivers = sorted(libraries(path) & set(DRIVERS))
    assert drivers == [], (
        f"{module_name(path)} imports {drivers}: a driver belongs in workers/adapters/<technology>;"
        " reach it through a port"
    )


@pytest.mark.parametrize("path", source_files(), ids=lambda p: module_name(p))
def test_the_runtime_libraries_stay_at_the_runtime_and_above(path: Path) -> None:
    if floor(room(module_name(path))) >= floor("workers.stream"):
        return
    found = sorted(libraries(path) & set(RUNTIME_LIBRARIES))
    assert found == [], f"{module_name(path)} imports {found}: Faust and HTTP are the runtime's"


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


def test_the_checks_catch_an_upward_import_and_a_cycle() -> None:
    assert upward(
        "workers.roles.command.commands", {"workers.runtime.settings", "workers.ports"}
    ) == ["workers.runtime.settings"]
    sides = {"workers.roles.append.appender", "workers.roles.read.live", "workers.roles.outcomes"}
    assert upward("workers.roles.command.commands", sides) == [
        "workers.roles.append.appender",
        "workers.roles.read.live",
    ]
    assert upward("workers.roles.state", {"workers.roles.command.ledger"}) == [
        "workers.roles.command.ledger"
    ]
    assert upward("workers.roles.ops.audit", sides) == []
    mongo = "workers.adapters.mongo"
    assert upward("workers.storage.storage", {mongo}) == [mongo]
    assert upward("workers.bus.common", {"workers.storage.ports"}) == ["workers.storage.ports"]
    assert upward("workers.http.routes", {"workers.devtools.dev"}) == ["workers.devtools.dev"]
    assert upward("workers.runtime.serve", {"workers.http.routes"}) == ["workers.http.routes"]
    assert upward("workers.http.live.chat", {"workers.runtime.fleet"}) == []
    assert upward("workers.stream.offsets", {"workers.runtime.fleet"}) == ["workers.runtime.fleet"]
    assert upward("workers.runtime.fleet", {"workers.stream.offsets"}) == []
    assert upward("workers.cli.entry", {"workers.examples.domains"}) == ["workers.examples.domains"]
    assert upward("workers.adapters.mongo.documents", {"workers.storage.ports"}) == []
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


SERVER_LIBRARIES = ("faust", "mode", "pymongo", "bson", "motor", "redis", "aiokafka",
                    "prometheus_client", "nats")  # fmt: skip


def test_the_client_imports_nothing_of_the_server_but_its_generators_the_declarations() -> None:
    """``workers.client`` is what other services install to call the fleet: its modules import
    each other only; ``codegen`` and ``render_events`` (run by hand, never at import) alone read
    the declarations they generate from (the error catalogue, the domains)."""
    outside = {
        module: sorted(t for t in targets if not inside(t, "workers.client"))
        for module, targets in graph().items()
        if inside(module, "workers.client")
    }
    assert outside.pop("workers.client.codegen") == ["workers.runtime.error_codes"]
    assert outside.pop("workers.client.render_events") == [
        "snapshot_rules.domain", "snapshot_rules.schema", "workers.runtime.loading"]  # fmt: skip
    assert all(not found for found in outside.values()), outside


def test_importing_the_client_loads_no_driver_no_faust_no_aiohttp_and_no_server_module() -> None:
    code = "import sys, workers.client, workers.client.errors; print('\\n'.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.split()  # fmt: skip
    server = sorted(
        m for m in loaded
        if m.split(".")[0] in (*SERVER_LIBRARIES, "aiohttp", "topics", "snapshot_rules")
        or (m.startswith("workers.") and not inside(m, "workers.client"))
    )  # fmt: skip
    assert server == [], f"importing workers.client loaded {server}"
    tops = {m.split(".")[0] for m in loaded}
    assert {"httpx", "httpx_sse", "stamina", "msgspec"} <= tops  # the check saw a real import
