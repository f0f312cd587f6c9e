"""The docs name only paths the repository has: a backticked `workers/…`, `tests/…`,
`deploy/…`, `topics/…`, `snapshot_rules/…` or `docs/…` in README.md or docs/ must exist, and so
must README's relative links (the site's own links are mkdocs' to check, --strict)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("workers/", "tests/", "deploy/", "topics/", "snapshot_rules/", "docs/")
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PLACEHOLDERS = set("{}<>*…$[]|")


def named_paths(text: str) -> list[tuple[int, str]]:
    """(line, path) of every code span that is one repository path (``a/b.py::test`` and
    ``a/b.py:12`` name ``a/b.py``); a span holding a command or a pattern is not one."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for span in SPAN.findall(line):
            word = span.strip().rstrip(".,;")
            if " " in word or not word.startswith(ROOMS) or PLACEHOLDERS & set(word):
                continue
            found.append((number, re.sub(r"(::.*|:\d+)$", "", word)))
    return found


def missing(text: str, root: Path = ROOT) -> list[str]:
    return [f"line {n}: `{path}`" for n, path in named_paths(text) if not (root / path).exists()]


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_repository_path_the_docs_name_exists() -> None:
    problems = {str(page.relative_to(ROOT)): missing(page.read_text()) for page in pages()}
    assert {page: found for page, found in problems.items() if found} == {}
    assert sum(len(named_paths(page.read_text())) for page in pages()) > 100  # it looks


def test_readme_links_lead_to_files() -> None:
    targets = [t for t in LINK.findall((ROOT / "README.md").read_text()) if "://" not in t]
    assert targets and all((ROOT / t).exists() for t in targets), [
        t for t in targets if not (ROOT / t).exists()
    ]


def test_a_path_that_moved_is_named_and_commands_or_patterns_are_not_paths() -> None:
    text = (
        "A projection (`workers/projections.py`, `workers/views.py`) and\n"
        "`workers/roles/read/projections.py`, `tests/unit/test_docs_paths.py::test_x`,\n"
        "`kubectl logs deploy/eventfleet-lag`, `workers/roles/*.py`, `tests/{unit,e2e}/`,\n"
        "`workers/embedded/`."
    )
    assert missing(text) == [
        "line 1: `workers/projections.py`",
        "line 1: `workers/views.py`",
        "line 4: `workers/embedded/`",
    ]
