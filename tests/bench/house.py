"""The house's figures, as issue 48 counts them: code lines, large modules and functions, wide
constructors, protocols, the dependencies' private internals we reach, and the tidy figures
(``# fmt: skip`` markers, lines over 100 characters).

``python -m tests.bench.house [ROOT]`` (default: this checkout) prints one line per figure;
``--json`` one JSON object; ``--packages`` the rest's code lines by package (``workers/<a>/<b>``,
or a module of ``workers/`` itself), and with ``--base REV`` that revision's beside them,
largest growth first (``--base 7952c56``: since the issue was filed). Code lines are every line
of ``workers/`` that is neither blank, nor a comment, nor part of a docstring (a module's, a
class's or a function's first string); statements are the AST's, which the formatter's layout
does not change.

The issue's code-line target counts the capabilities other issues added apart: ``LATER`` names
the modules that are wholly such a capability (each added after the issue was filed, at
7952c56), and the figures print their code lines apart, and the private internals their
modules reach (with ``LATER_INTERNALS``). What a capability changed inside older
modules (expected versions, the new server) is not counted apart: the split errs towards the
older code.
"""

from __future__ import annotations

import argparse
import ast
import io
import tempfile
import tokenize
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from tests.bench import ROOT, archived

MODULE_MAX = 500
FUNCTION_MAX = 80
PARAMS_MAX = 8
LINE_MAX = 100

LATER = {
    "46 fair shares": [
        "workers/adapters/memory/budgets.py",
        "workers/adapters/redis/budgets.py",
        "workers/ports/budgets.py",
        "workers/roles/command/budget.py",
        "workers/stream/assignor.py",
        "workers/runtime/membership.py",
        "workers/devtools/bench/balance.py",
        "workers/devtools/bench/fairness.py",
        "workers/devtools/bench/paced.py",
    ],
    "47 process managers": [
        "workers/roles/process/",
        "workers/ports/process.py",
        "workers/adapters/instances.py",
        "workers/adapters/memory/processes.py",
        "workers/adapters/mongo/processes.py",
        "workers/cli/pm.py",
        "workers/client/_processes.py",
        "workers/http/processes.py",
        "workers/http/console/processes.py",
        "workers/examples/domains/order_lifecycle.py",
        "workers/examples/domains/shipment.py",
        "workers/examples/demo/processes.py",
        "workers/runtime/processes.py",
        "workers/devtools/bench/pm.py",
    ],
    "47 global read": [
        "workers/http/global_read.py",
        "workers/roles/read/global_read.py",
        "workers/roles/read/position.py",
        "workers/client/_global.py",
        "workers/cli/events.py",
        "workers/adapters/kafka/pages.py",
        "workers/adapters/memory/pages.py",
        "workers/devtools/bench/global_read.py",
    ],
    "47 multi-aggregate appends": [
        "workers/cqrs/together.py",
        "workers/http/appends.py",
        "workers/roles/command/multi_mode.py",
        "workers/roles/command/multi_requests.py",
        "workers/runtime/multi_answers.py",
        "workers/adapters/mongo/transactions.py",
    ],
    "49 console topics and actions": [
        "workers/adapters/kafka/groups.py",
        "workers/adapters/kafka/topic_reads.py",
        "workers/http/console/acting.py",
        "workers/http/console/group_reset.py",
        "workers/http/console/log.py",
        "workers/http/console/post_event.py",
        "workers/http/console/produce.py",
        "workers/http/console/record_filter.py",
        "workers/http/console/tail.py",
        "workers/http/console/topic_forms.py",
        "workers/http/console/topics.py",
    ],
}
"""Modules wholly a capability another issue added, by issue (a path ending in / names a
package)."""

LATER_INTERNALS = {"workers/http/edge/wire.py": "45 the new server's live pushes"}
"""Modules outside ``LATER`` whose reach into a dependency's internals came with another
issue's capability: the edge's wire (uvicorn's per-connection objects, for the live pushes'
fan-out) came with the server issue 45 decided on, which replaced the aiohttp front door."""


def capability_of(name: str) -> str | None:
    """The ``LATER`` capability module ``name`` belongs to, if any."""
    for capability, paths in LATER.items():
        if any(name == p or (p.endswith("/") and name.startswith(p)) for p in paths):
            return capability
    return None


def package_of(name: str) -> str:
    """The package of a module (``workers/<a>`` or ``workers/<a>/<b>``, not deeper), or the
    module itself where it lies in ``workers/``."""
    parts = name.split("/")
    return "/".join(parts[: min(3, len(parts) - 1)]) if len(parts) > 2 else name


@dataclass
class Figures:
    code_lines: int = 0
    later_lines: dict[str, int] = field(default_factory=dict)
    statements: int = 0
    later_statements: dict[str, int] = field(default_factory=dict)
    modules: int = 0
    modules_over: list[str] = field(default_factory=list)
    functions_over: list[str] = field(default_factory=list)
    constructors_over: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    private_internals: int = 0
    later_internals: dict[str, int] = field(default_factory=dict)
    fmt_skips: int = 0
    long_lines: int = 0
    packages: dict[str, int] = field(default_factory=dict)
    """The rest's code lines (other issues' modules apart) by package."""


def docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers of every docstring of ``tree``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    end = body[0].end_lineno or body[0].lineno
                    found.update(range(body[0].lineno, end + 1))
    return found


def code_lines(source: str, tree: ast.AST) -> int:
    """Lines holding a token that is neither a comment nor part of a docstring."""
    skip = docstring_lines(tree)
    lines: set[int] = set()
    ignored = (
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    )
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in ignored:
            continue
        for line in range(token.start[0], token.end[0] + 1):
            if line not in skip:
                lines.add(line)
    return len(lines)


def measure(root: Path) -> Figures:
    figures = Figures()
    for path in sorted((root / "workers").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        figures.modules += 1
        lines = code_lines(source, tree)
        statements = sum(isinstance(node, ast.stmt) for node in ast.walk(tree))
        figures.code_lines += lines
        figures.statements += statements
        if (capability := capability_of(name)) is not None:
            figures.later_lines[capability] = figures.later_lines.get(capability, 0) + lines
            figures.later_statements[capability] = (
                figures.later_statements.get(capability, 0) + statements
            )
        else:
            package = package_of(name)
            figures.packages[package] = figures.packages.get(package, 0) + lines
        figures.fmt_skips += source.count("# fmt: skip")
        figures.long_lines += sum(len(line) > LINE_MAX for line in source.splitlines())
        if source.count("\n") > MODULE_MAX:
            figures.modules_over.append(f"{name} ({source.count(chr(10))})")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_MAX:
                    figures.functions_over.append(f"{name}:{node.name} ({length})")
                if node.name == "__init__":
                    params = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                    if len(params) - 1 > PARAMS_MAX:  # self is no parameter
                        figures.constructors_over.append(
                            f"{name}:{node.lineno} ({len(params) - 1})"
                        )
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(b, ast.Name) and b.id == "Protocol")
                or (isinstance(b, ast.Attribute) and b.attr == "Protocol")
                or (isinstance(b, ast.Subscript) and getattr(b.value, "id", "") == "Protocol")
                for b in node.bases
            ):
                figures.protocols.append(f"{name}:{node.name}")
    users = private_internals(root)
    figures.private_internals = len(users)
    for user in users:
        capability = LATER_INTERNALS.get(user) or capability_of(user)
        if capability is not None:
            figures.later_internals[capability] = figures.later_internals.get(capability, 0) + 1
    return figures


def private_internals(root: Path) -> list[str]:
    """The module using each entry of ``tests/unit/test_private_apis.py``'s ``USES`` (package,
    owner, attribute, user, why): one a dependency's internal we reach."""
    source = (root / "tests" / "unit" / "test_private_apis.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "USES" for t in targets):
                assert isinstance(node.value, ast.List), "USES is a list of tuples"
                entries = [e for e in node.value.elts if isinstance(e, ast.Tuple)]
                return [ast.literal_eval(entry.elts[3]) for entry in entries]
    raise SystemExit("tests/unit/test_private_apis.py has no USES list")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=str(ROOT))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--packages", action="store_true", help="the rest's lines by package")
    parser.add_argument("--base", metavar="REV", help="with --packages: REV's lines beside")
    args = parser.parse_args()
    figures = measure(Path(args.root))
    if args.packages:
        print_packages(figures, args.base)
        return
    if args.json:
        print(orjson.dumps(asdict(figures)).decode())
        return
    print(f"workers/ code lines (no blanks, comments, docstrings): {figures.code_lines}")
    later = sum(figures.later_lines.values())
    for capability, lines in sorted(figures.later_lines.items()):
        print(f"  of them in modules of issue {capability}: {lines}")
    print(f"  the rest (what the issue's target counts): {figures.code_lines - later}")
    rest = figures.statements - sum(figures.later_statements.values())
    print(f"workers/ statements (the AST's, whatever the layout): {figures.statements}")
    print(f"  the rest: {rest}")
    print(f"modules: {figures.modules}; over {MODULE_MAX} lines: {len(figures.modules_over)}")
    for entry in figures.modules_over:
        print(f"  {entry}")
    print(f"functions over {FUNCTION_MAX} lines: {len(figures.functions_over)}")
    for entry in figures.functions_over:
        print(f"  {entry}")
    print(f"constructors over {PARAMS_MAX} parameters: {len(figures.constructors_over)}")
    for entry in figures.constructors_over:
        print(f"  {entry}")
    print(f"protocols: {len(figures.protocols)}")
    print(
        f"dependencies' private internals reached (test_private_apis): {figures.private_internals}"
    )
    for capability, count in sorted(figures.later_internals.items()):
        print(f"  of them for issue {capability}: {count}")
    rest = figures.private_internals - sum(figures.later_internals.values())
    print(f"  the rest (the issue counted 28 when filed): {rest}")
    print(f"`# fmt: skip` markers: {figures.fmt_skips}")
    print(f"lines over {LINE_MAX} characters: {figures.long_lines}")


def print_packages(figures: Figures, base: str | None) -> None:
    """The rest's code lines by package, largest first, or with ``base``'s beside them, largest
    growth first."""
    now = figures.packages
    if base is None:
        for name in sorted(now, key=lambda n: (-now[n], n)):
            print(f"{now[name]:6d}  {name}")
        print(f"{sum(now.values()):6d}  in all")
        return
    with tempfile.TemporaryDirectory(prefix="eventfleet-house-") as folder:
        # workers/ and the private-internals list measure() reads
        then = archived(base, ["workers", "tests/unit/test_private_apis.py"], Path(folder))
        before = measure(then).packages
    print(f"{'change':>7} {base[:10]:>10} {'now':>6}  package")
    for name in sorted(set(now) | set(before), key=lambda n: (before.get(n, 0) - now.get(n, 0), n)):
        old, new = before.get(name, 0), now.get(name, 0)
        print(f"{new - old:+7d} {old:10d} {new:6d}  {name}")
    print(f"{'':>7} {sum(before.values()):10d} {sum(now.values()):6d}  in all")


if __name__ == "__main__":
    main()
