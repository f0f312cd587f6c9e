"""The dependency direction of STYLE.md: topics <- snapshot_rules <- workers, no drivers below."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imports import ROOT, imported_modules, module_name

DRIVERS = frozenset(
    {
        "faust",
        "mode",
        "aiokafka",
        "pymongo",
        "bson",
        "motor",
        "redis",
        "prometheus_client",
        "nats",
        "workers",
    }
)
FORBIDDEN = {"topics": DRIVERS | {"snapshot_rules"}, "snapshot_rules": DRIVERS}


def violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """``module imports name`` for each import its layer forbids."""
    forbidden = FORBIDDEN[module.split(".")[0]]
    return sorted(
        f"{module} imports {name}"
        for name in imported_modules(source, module, is_package=is_package)
        if name.split(".")[0] in forbidden
    )


def _layer_files() -> list[Path]:
    return sorted(p for layer in FORBIDDEN for p in (ROOT / layer).rglob("*.py"))


def test_the_layers_are_found() -> None:
    names = {module_name(path) for path in _layer_files()}
    assert {"topics.envelope", "topics.catalog", "snapshot_rules.replay"} <= names
    assert "snapshot_rules.domain" in names


@pytest.mark.parametrize("path", _layer_files(), ids=lambda p: module_name(p))
def test_lower_layers_import_no_driver_and_nothing_above_them(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    module = module_name(path)
    assert violations(source, module, is_package=path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import pymongo\n", "topics.envelope", ["topics.envelope imports pymongo"]),
        ("import os, redis.asyncio as r\n", "topics.x", ["topics.x imports redis.asyncio"]),
        ("from faust import App\n", "snapshot_rules.x", ["snapshot_rules.x imports faust"]),
        (
            "from bson import ObjectId\n",
            "snapshot_rules.schema",
            ["snapshot_rules.schema imports bson"],
        ),
        (
            "from workers.runtime.settings import Settings\n",
            "snapshot_rules.rules",
            ["snapshot_rules.rules imports workers.runtime.settings"],
        ),
        (
            "from snapshot_rules import rules\n",
            "topics.catalog",
            ["topics.catalog imports snapshot_rules"],
        ),
        (
            "def f():\n    import prometheus_client\n",
            "topics.x",
            ["topics.x imports prometheus_client"],
        ),
        ("if True:\n    from nats.js import api\n", "topics.x", ["topics.x imports nats.js"]),
        (
            "import importlib\nimportlib.import_module('aiokafka')\n",
            "topics.x",
            ["topics.x imports aiokafka"],
        ),
        (
            "__import__('motor.motor_asyncio')\n",
            "topics.x",
            ["topics.x imports motor.motor_asyncio"],
        ),
        ("from mode import Service\n", "snapshot_rules.x", ["snapshot_rules.x imports mode"]),
    ],
)
def test_the_checker_catches_violations(source: str, module: str, expected: list[str]) -> None:
    assert violations(source, module) == expected


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import orjson, uuid\nfrom datetime import UTC\n", "topics.envelope"),
        ("from topics.envelope import Event\n", "snapshot_rules.replay"),
        ("from snapshot_rules.rules import every\n", "snapshot_rules.declaration"),
        ("import modern, redislike, workers_guide\n", "topics.x"),  # prefixes are not roots
        ("from . import rules\nfrom .schema import Obj\n", "snapshot_rules.domain"),
    ],
)
def test_the_checker_allows_what_the_layer_may_use(source: str, module: str) -> None:
    assert violations(source, module) == []


def test_relative_imports_resolve_against_the_package() -> None:
    source = "from . import a\nfrom .b import c\nfrom .. import d\nfrom ..e import f\n"
    assert imported_modules(source, "snapshot_rules.sub.order") == {
        "snapshot_rules.sub",
        "snapshot_rules.sub.b",
        "snapshot_rules",
        "snapshot_rules.e",
    }
    assert imported_modules("from .x import y\n", "topics", is_package=True) == {"topics.x"}


def test_a_one_shot_command_starts_without_faust() -> None:
    """``eventfleet replay`` and the other tools import the CLI, never the agents: Faust and
    aiohttp's server cost every such process about half a second of CPU to import."""
    probe = "import sys, workers.cli; print(sorted({'faust', 'mode'} & set(sys.modules)))"
    out = in_fresh_python(probe).stdout
    assert out.strip() == "[]", out


def in_fresh_python(probe: str) -> subprocess.CompletedProcess[str]:
    """``probe`` run by a new interpreter at the checkout's root: what a process of its own
    imports, unaffected by what this test process already holds."""
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )


RUNTIME_AND_DRIVERS = ("workers.runtime.compose", "workers.adapters", "faust", "aiokafka",
                       "pymongo", "redis")  # fmt: skip
"""What building the parser, and ``eventfleet events``, must not import."""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["events", "--help"], 0),
        (["replay", "--help"], 0),
        (["worker", "--role", "nosuch"], 2),
        (["events", "--url", "http://127.0.0.1:1", "--limit", "1"], 1),  # nothing listens there
    ],
    ids=["help", "events-help", "replay-help", "usage-error", "events"],
)
def test_help_a_usage_error_and_events_load_no_runtime(argv: list[str], code: int) -> None:
    """The parser declares every command without the runtime; ``eventfleet events`` is a client
    of the HTTP API: none of them imports the composition root or a driver (seconds of CPU)."""
    probe = (
        "import sys\nfrom workers.cli import main\n"
        f"try:\n    code = main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {RUNTIME_AND_DRIVERS!r} "
        f"or m.startswith({RUNTIME_AND_DRIVERS[:2]!r}))\n"
        "print(code, loaded, file=sys.stderr)"  # last, after the command's own lines
    )
    done = in_fresh_python(probe)
    assert done.stderr.splitlines()[-1] == f"{code} []", done.stderr


def test_a_worker_imports_only_what_it_runs() -> None:
    """``eventfleet worker`` imports what ``run_worker`` names, and no client for what only
    some settings use: httpx fetches a JWKS over https (with its command-line extras, ~0.1 s of
    CPU in each of the suite's ~250 worker starts); a JWKS file needs none of it."""
    run_worker = next(
        node
        for node in ast.walk(ast.parse((ROOT / "workers/cli/commands.py").read_text()))
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "run_worker"
    )
    imported = sorted(imported_modules(ast.unparse(run_worker), "workers.cli.commands"))
    assert "workers.runtime.serve" in imported  # what the worker runs is found
    probe = (
        "import importlib, sys\nimport workers.cli.entry\n"
        f"for name in {imported!r}:\n    importlib.import_module(name)\n"
        "print(sorted({'httpx', 'rich'} & set(sys.modules)))"
    )
    out = in_fresh_python(probe).stdout
    assert out.strip() == "[]", out
