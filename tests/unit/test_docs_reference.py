"""The documentation site's reference tables are generated from the code when it is built
(``workers/devtools/docs.py``, a hook of ``mkdocs.yml``): the configuration page holds every
setting, the error-codes page every code, the HTTP API page every operation; nothing to copy."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest

from workers.devtools import docs
from workers.devtools.docs_http import example_queries
from workers.http.declared import OPERATIONS, PAGES
from workers.runtime.answers import ERROR_CODES
from workers.runtime.compose import load_domains
from workers.runtime.settings import documented

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("page", "table"),
    [("reference/configuration.md", "settings"), ("reference/configuration.md", "opentelemetry"),
     ("reference/error-codes.md", "error-codes"),
     ("reference/http-api.md", "operations"), ("development.md", "capabilities")],
)  # fmt: skip
def test_each_reference_page_names_its_generated_table_once(page: str, table: str) -> None:
    text = (ROOT / "docs" / page).read_text()
    assert text.count(f"<!-- generated: {table} -->") == 1
    assert table in docs.TABLES


def first_code(row: str) -> str:
    """The text of a generated row's first code span, without its break marks."""
    return row.split("<code>", 1)[1].split("</code>", 1)[0].replace("<wbr>", "")


def test_every_setting_has_its_row_with_its_default_and_meaning() -> None:
    rows = docs.generate("<!-- generated: settings -->").splitlines()[2:]
    assert len(rows) == len(documented())
    for row, (name, default, _) in zip(rows, documented(), strict=True):
        shown = "" if default == "" else docs.code(default)
        assert row.startswith(f"| {docs.code(name)} | {shown} |"), row
        assert first_code(row) == name


def test_every_opentelemetry_variable_has_its_row() -> None:
    from workers.runtime.settings import OPENTELEMETRY

    rows = docs.generate("<!-- generated: opentelemetry -->").splitlines()[2:]
    assert [first_code(row) for row in rows] == [name for name, _, _ in OPENTELEMETRY]


def test_every_error_code_has_its_row() -> None:
    rows = docs.generate("<!-- generated: error-codes -->").splitlines()[2:]
    assert [first_code(row) for row in rows] == [e.code for e in ERROR_CODES]


def test_a_long_name_breaks_only_where_marked_and_html_is_escaped() -> None:
    assert docs.code("EVENTFLEET_KAFKA_URL") == "<code>EVENTFLEET_<wbr>KAFKA_<wbr>URL</code>"
    assert docs.code("/v1/a?x=1&y=2") == ("<code>/<wbr>v1/<wbr>a<wbr>?x=1&amp;<wbr>y=2</code>")
    assert docs.code("<b>") == "<code>&lt;b&gt;</code>"


def test_every_route_has_one_section_with_its_answers_and_an_example() -> None:
    text = docs.generate("<!-- generated: operations -->")
    sections = text.split("\n### ")
    for op in (*OPERATIONS, *PAGES):
        found = [s for s in sections if s.lstrip("# ").startswith(f"`{op.method} {op.template}`\n")]
        assert len(found) == 1, op.template  # once, whatever the number of types it serves
        section = found[0]
        assert "| status | answer |" in section and "```bash" in section, op.template
        for success in op.doc.ok:
            assert f"| {success.status} |" in section, (op.template, success.status)
        if op.query is not None:
            for param in msgspec.structs.fields(op.query):
                assert f"| {docs.code(param.name)} | query |" in section, (op.template, param)
    assert "/v1/order/" not in "".join(s.split("```bash")[0] for s in sections)  # no per-type copy
    assert "### `GET /chat/{room_id}`" in text and "### `GET /v1/rooms/{room_id}/messages`" in text


def test_every_example_query_is_one_its_route_accepts() -> None:
    """The examples are bound like a request's query: a renamed parameter fails here."""
    for op, query in example_queries():
        assert op.query is not None, op.name
        fields = {f.name for f in msgspec.structs.fields(op.query)}
        assert set(query) <= fields, (op.name, set(query) - fields)
        msgspec.convert(query, op.query, strict=False)


def test_the_append_example_is_a_command_the_order_domain_takes() -> None:
    text = docs.generate("<!-- generated: operations -->")
    line = next(s for s in text.split("\n") if '-XPOST "$EVENTFLEET_API/v1/order/o-1/events"' in s)
    body = orjson.loads(line.split("-d '", 1)[1].rstrip("'"))
    order = next(d for d in load_domains(docs.EXAMPLES) if d.name == "order")
    spec = order.spec(body["type"])
    assert spec.schema.check(body["data"], "data") is None


def test_a_pipe_in_a_description_cannot_break_its_row() -> None:
    assert docs.cell("a | b") == "a \\| b"
    assert docs.cell("one\ntwo") == "one two"
    assert docs.cell("joins <group_id>-<role>, `a<b>`") == (
        "joins &lt;group_id&gt;-&lt;role&gt;, `a<b>`"  # text, not an HTML tag; code as it is
    )


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
