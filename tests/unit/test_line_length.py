"""No line of ``workers/`` is over 100 characters, its trailing comments included.

ruff's E501 measures a line without a trailing ``# type: ignore`` or ``# noqa`` pragma, and the
reasons after those pragmas were where most long lines were (issue 48). This counts every
character, as ``tests/bench/house.py``'s ``long_lines`` figure does.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINE_MAX = 100


def long_lines(source: str) -> list[int]:
    """The numbers of the lines of ``source`` over ``LINE_MAX`` characters."""
    return [n for n, line in enumerate(source.splitlines(), 1) if len(line) > LINE_MAX]


MODULES = {
    path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "workers").rglob("*.py"))
}


def test_no_line_is_over_100_characters() -> None:
    found = [f"{module}:{n}" for module, source in MODULES.items() for n in long_lines(source)]
    assert not found, (
        f"over {LINE_MAX} characters: {', '.join(found)}; rewrap them (a shorter reason after "
        "a type: ignore, a part computed first, a call over several lines)"
    )


def test_a_long_pragma_line_counts() -> None:
    reason = "a reason " * 10
    assert long_lines(f"x = f()  # type: ignore[no-untyped-call]  # {reason}\n") == [1]
    assert long_lines("x = 1\n" + "y = 2  # short\n") == []
