"""A test module imports no other test module: what tests share lives in a support module
(``tests/fleet.py``, ``tests/cli.py``, ``tests/console/browsing.py``, …), so a helper has one home,
and running or changing one test file never runs or breaks another's import."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import ROOT, imported_modules, module_name

TESTS = sorted((ROOT / "tests").rglob("*.py"))


def is_test_module(name: str) -> bool:
    """Whether ``name`` (dotted) is a test module of this repository."""
    return name.startswith("tests.") and name.rpartition(".")[2].startswith("test_")


@pytest.mark.parametrize("path", TESTS, ids=lambda p: module_name(p))
def test_a_test_module_imports_no_other_test_module(path: Path) -> None:
    me = module_name(path)
    source = path.read_text(encoding="utf-8")
    imported = imported_modules(source, me, is_package=path.name == "__init__.py")
    assert sorted(n for n in imported if is_test_module(n) and n != me) == []


def test_the_check_sees_a_test_module_imported_absolutely_relatively_and_in_a_function() -> None:
    source = (
        "from tests.unit.test_identity import hostile\n"
        "from .test_appender import Rig\n"
        "def f():\n    from tests.console.test_dlq_replay import letter\n"
        "from tests.fleet import FleetProcess\n"
    )
    imported = imported_modules(source, "tests.roles.test_x")
    assert sorted(n for n in imported if is_test_module(n)) == [
        "tests.console.test_dlq_replay",
        "tests.roles.test_appender",
        "tests.unit.test_identity",
    ]
