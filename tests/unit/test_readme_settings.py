"""The README's configuration table is the settings module's, row for row."""

from __future__ import annotations

from pathlib import Path

from workers.runtime.settings import OPENTELEMETRY, documented

README = Path(__file__).resolve().parents[2] / "README.md"


def table_rows() -> list[str]:
    text = README.read_text()
    start = text.index("| variable | default | meaning |")
    block = text[start : text.index("\n\n", start)].splitlines()
    return block[2:]


def test_every_setting_has_its_row_with_its_default_and_meaning() -> None:
    expected = []
    for name, default, doc in documented():
        shown = "" if default == "" else f"`{default}`"
        expected.append(f"| `{name}` | {shown} | {doc.replace('|', chr(92) + '|')} |")
    assert table_rows() == expected, "regenerate the README table from workers/runtime/settings.py"


def test_the_opentelemetry_variables_have_their_table() -> None:
    text = README.read_text()
    start = text.index("| OpenTelemetry variable | default | meaning |")
    rows = text[start : text.index("\n\n", start)].splitlines()[2:]
    expected = []
    for name, default, doc in OPENTELEMETRY:
        shown = "" if default == "" else f"`{default}`"
        expected.append(f"| `{name}` | {shown} | {doc} |")
    assert rows == expected, "regenerate the README table from OPENTELEMETRY in settings.py"
