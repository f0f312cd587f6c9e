"""``Any`` only at JSON edges, through one alias; every ``type: ignore`` names its code and why.

The one alias is ``topics.jsonvalue.Json`` (``JsonObject`` is built on it): a JSON-shaped value,
``Any`` on purpose (its docstring says why). Anywhere else ``Any`` hides a type a reader and mypy
should see: wiring takes real classes or Protocols. A ``# type: ignore`` says which error it
silences and why it cannot be fixed here: ``# type: ignore[attr-defined]  # faust's ... untyped``.
mypy's ``warn_unused_ignores`` removes those no longer needed.

``PENDING_ANY`` and ``PENDING_IGNORES`` list the modules not cleaned yet. They only shrink: a
listed module that is clean fails the test until its entry goes, and no module may be added.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("topics", "snapshot_rules", "workers")
JSON_ALIAS = "topics/jsonvalue.py"

PENDING_ANY: frozenset[str] = frozenset()
"""Modules other work was changing when the rest were cleaned: none left, and none may come."""

PENDING_IGNORES = frozenset({})
"""Modules whose ignores still lack a reason (mypy warns on unused ones everywhere)."""

_IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<rest>.*)")
_WELL_FORMED = re.compile(
    r"\[(?P<codes>[a-z][a-z-]*(?:,\s*[a-z][a-z-]*)*)\]\s+#\s*(?P<reason>\S.*)"
)
MIN_REASON = 12
"""Characters a reason needs at least: a few words, not ``# ok`` or ``# mypy``."""


def sources(root: Path) -> dict[str, str]:
    """Every module of the packages under ``root``, by its path relative to ``root``."""
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for top in PACKAGES
        for path in sorted((root / top).rglob("*.py"))
    }


def bad_ignores(source: str) -> list[int]:
    """Lines whose ``type: ignore`` names no error code or gives no reason after it."""
    bad = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        found = _IGNORE.search(token.string)
        if found is None:
            continue
        well = _WELL_FORMED.match(found.group("rest"))
        if well is None or len(well.group("reason").strip()) < MIN_REASON:
            bad.append(token.start[0])
    return bad


def any_lines(source: str) -> list[int]:
    """Lines that use ``Any`` in code: names, ``typing.Any``, and string annotations."""
    tree = ast.parse(source)
    lines = {n.lineno for n in ast.walk(tree) if _is_any(n)}
    for text, line in _string_annotations(tree):
        try:
            parsed = ast.parse(text, mode="eval")
        except SyntaxError:
            continue
        if any(_is_any(n) for n in ast.walk(parsed)):
            lines.add(line)
    return sorted(lines)


def _is_any(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "Any") or (
        isinstance(node, ast.Attribute) and node.attr == "Any"
    )


def _string_annotations(tree: ast.AST) -> list[tuple[str, int]]:
    """String constants that are types: inside annotations, subscripts (``dict[K, "V"]``),
    ``cast("T", ...)`` and the value of an explicit ``TypeAlias``."""
    typed: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            typed.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            typed.append(node.returns)
        if isinstance(node, ast.Subscript):
            typed.append(node.slice)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "cast" and node.args:
            typed.append(node.args[0])
        if (
            isinstance(node, ast.AnnAssign)
            and getattr(node.annotation, "id", "") == "TypeAlias"
            and node.value is not None
        ):
            typed.append(node.value)
    return [
        (n.value, n.lineno)
        for t in typed
        for n in ast.walk(t)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def violations(
    root: Path, pending_any: frozenset[str], pending_ignores: frozenset[str]
) -> list[str]:
    """Each ``Any`` outside the alias and each ignore without code and reason, as ``path:line``."""
    found = []
    for path, source in sources(root).items():
        if path != JSON_ALIAS and path not in pending_any:
            found += [f"{path}:{line}: Any" for line in any_lines(source)]
        if path not in pending_ignores:
            found += [f"{path}:{line}: bare type: ignore" for line in bad_ignores(source)]
    return found


def test_any_only_in_the_json_alias_and_every_ignore_says_why() -> None:
    found = violations(ROOT, PENDING_ANY, PENDING_IGNORES)
    assert found == [], (
        "Any outside topics.jsonvalue, or a type: ignore without [code] and a reason:\n  "
        + "\n  ".join(found)
        + "\nUse Json/JsonObject at a JSON edge, a real class or a Protocol in wiring; write "
        "ignores as '# type: ignore[code]  # why it cannot be typed here'."
    )


def test_the_json_alias_is_the_one_any() -> None:
    alias = (ROOT / JSON_ALIAS).read_text(encoding="utf-8")
    assert len(any_lines(alias)) == 1, f"{JSON_ALIAS} defines Json = Any and nothing else with Any"


def test_the_pending_lists_only_shrink() -> None:
    modules = sources(ROOT)
    stale_any = sorted(p for p in PENDING_ANY if p not in modules or not any_lines(modules[p]))
    stale_ignores = sorted(
        p for p in PENDING_IGNORES if p not in modules or not bad_ignores(modules[p])
    )
    assert stale_any == [], f"clean now (or gone): remove {stale_any} from PENDING_ANY"
    assert stale_ignores == [], f"clean now (or gone): remove {stale_ignores} from PENDING_IGNORES"


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        ("x = f()  # type: ignore", True),
        ("x = f()  # type: ignore[misc]", True),
        ("x = f()  # type: ignore[misc]  # ok", True),
        ("x = f()  # type:ignore[attr-defined]#faust", True),
        ("x = f()  # type: ignore[attr-defined]  # faust's Web is the abstract driver", False),
        ("x = f()  # type: ignore[misc, no-any-return]  # a mixin: its base has the method", False),
        ('x = "# type: ignore"', False),
    ],
)
def test_the_ignore_scanner(line: str, bad: bool) -> None:
    assert (bad_ignores(line + "\n") == [1]) is bad


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ("from typing import Any\nx: Any = 1\n", [2]),
        ("import typing\ndef f(x: typing.Any) -> None: ...\n", [2]),
        ('def f(x: "dict[str, Any]") -> None: ...\n', [1]),
        ('class D(dict[int, "Any"]): ...\n', [1]),
        ('y = cast("list[Any]", [])\n', [1]),
        ('X: TypeAlias = "list[Any]"\n', [1]),
        ('"""Any authenticated principal may send it."""\n# Any comment\nx = "Any"\n', []),
        ("from topics.jsonvalue import Json\nx: Json = 1\n", []),
    ],
)
def test_the_any_scanner(source: str, lines: list[int]) -> None:
    assert any_lines(source) == lines


def test_a_planted_violation_fails_the_scan(tmp_path: Path) -> None:
    for top in PACKAGES:
        (tmp_path / top).mkdir()
    (tmp_path / "topics" / "jsonvalue.py").write_text("from typing import Any\nJson = Any\n")
    (tmp_path / "workers" / "clean.py").write_text(
        "from topics.jsonvalue import Json\n"
        "def f(x: Json) -> int:\n"
        "    return g(x)  # type: ignore[no-any-return]  # g comes from an untyped library\n"
    )
    assert violations(tmp_path, frozenset(), frozenset()) == []
    (tmp_path / "workers" / "wiring.py").write_text(
        "from typing import Any\ndef compose(app: Any) -> None:\n    app.start()  # type: ignore\n"
    )
    assert violations(tmp_path, frozenset(), frozenset()) == [
        "workers/wiring.py:2: Any",
        "workers/wiring.py:3: bare type: ignore",
    ]
    pending = frozenset({"workers/wiring.py"})
    assert violations(tmp_path, pending, pending) == []
