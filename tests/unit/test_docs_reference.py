"""The documentation site's reference tables are generated from the code when it is built
(``workers/devtools/docs.py``, a hook of ``mkdocs.yml``): the configuration page holds every
setting, the error-codes page every code, the HTTP API page every operation; nothing to copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.devtools import docs
from workers.http.declared import OPERATIONS
from workers.runtime.answers import ERROR_CODES
from workers.runtime.settings import documented

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("page", "table"),
    [("reference/configuration.md", "settings"), ("reference/configuration.md", "opentelemetry"),
     ("reference/error-codes.md", "error-codes"),
     ("reference/http-api.md", "operations")],
)  # fmt: skip
def test_each_reference_page_names_its_generated_table_once(page: str, table: str) -> None:
    text = (ROOT / "docs" / page).read_text()
    assert text.count(f"<!-- generated: {table} -->") == 1
    assert table in docs.TABLES


def test_every_setting_has_its_row_with_its_default_and_meaning() -> None:
    rows = docs.generate("<!-- generated: settings -->").splitlines()[2:]
    assert len(rows) == len(documented())
    for row, (name, default, _) in zip(rows, documented(), strict=True):
        assert row.startswith(f"| `{name}` | {'' if default == '' else f'`{default}`'} |"), row


def test_every_opentelemetry_variable_has_its_row() -> None:
    from workers.runtime.settings import OPENTELEMETRY

    rows = docs.generate("<!-- generated: opentelemetry -->").splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [name for name, _, _ in OPENTELEMETRY]


def test_every_error_code_has_its_row() -> None:
    rows = docs.generate("<!-- generated: error-codes -->").splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [e.code for e in ERROR_CODES]


def test_every_documented_route_is_in_the_operations_table() -> None:
    table = docs.generate("<!-- generated: operations -->")
    for op in OPERATIONS:
        per_type = op.template.startswith("/v1/{aggregate_type}/")
        shown = op.template.replace("{aggregate_type}", "order") if per_type else op.template
        assert f"`{op.method.upper()}` | `{shown}`" in table, op.template


def test_a_pipe_in_a_description_cannot_break_its_row() -> None:
    assert docs.cell("a | b") == "a \\| b"
    assert docs.cell("one\ntwo") == "one two"


def test_an_unknown_table_fails_the_build_by_name() -> None:
    with pytest.raises(docs.UnknownTable, match="settings"):
        docs.generate("<!-- generated: nothing-here -->")


def test_the_command_line_page_is_generated_from_the_parser() -> None:
    from workers.cli.args import parser
    from workers.cli.reference import MARKER, cli_table, on_page_markdown

    text = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert text.count(MARKER) == 1
    table = cli_table()
    commands = next(a for a in parser()._actions if a.dest == "command").choices
    for name in commands:
        assert f"`eventfleet {name} " in table or f"`eventfleet {name}`" in table, name
    for action in ("list", "show", "deadlines", "retry"):
        assert f"`eventfleet pm {action} " in table, action
    assert MARKER not in on_page_markdown(text)
