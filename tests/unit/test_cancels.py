"""A cancel is never lost: our packages bound their waits with ``asyncio.timeout``, never with
``asyncio.wait_for``.

On Python 3.11, ``wait_for`` runs what it awaits as a task of its own; when the caller is
cancelled just as that task finishes, it returns the task's result (or raises its error)
instead of the cancel, and the caller goes on as if nobody had asked it to stop: a cancelled
stack start went on starting (``tests/integration/test_embedded_stack.py`` makes that race
certain), a gap closer or a read-your-writes loop went on looping. ``asyncio.timeout`` runs it
in the caller's own task, where a cancel is a cancel.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("topics", "snapshot_rules", "workers")


def wait_for_calls(source: str) -> list[int]:
    """Lines of ``source`` that call ``asyncio.wait_for`` (or a bare ``wait_for`` imported
    from asyncio)."""
    tree = ast.parse(source)
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "asyncio"
        for alias in node.names
        if alias.name == "wait_for"
    }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "wait_for":
            if isinstance(f.value, ast.Name) and f.value.id == "asyncio":
                lines.append(node.lineno)
        elif isinstance(f, ast.Name) and f.id in imported:
            lines.append(node.lineno)
    return lines


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_wait_is_bounded_with_wait_for(path: Path) -> None:
    found = wait_for_calls(path.read_text())
    assert not found, (
        f"{path.relative_to(ROOT)} calls asyncio.wait_for on lines {found}: on Python 3.11 it "
        "can lose a cancel; write `async with asyncio.timeout(s): await ...` instead"
    )


def test_the_scan_finds_each_spelling_and_passes_the_right_one() -> None:
    assert wait_for_calls("import asyncio\nasync def f(c):\n    await asyncio.wait_for(c, 1)") == [
        3
    ]
    assert wait_for_calls("from asyncio import wait_for as w\nasync def f(c):\n    await w(c, 1)")
    right = "import asyncio\nasync def f(c):\n    async with asyncio.timeout(1):\n        await c"
    assert wait_for_calls(right) == []
    assert wait_for_calls("def wait_for(x):\n    pass\nwait_for(1)") == []  # our own name
