"""The documentation site's generated reference: tables made from the code, never copied.

``mkdocs.yml`` names this module as a hook: a page holding ``<!-- generated: NAME -->`` gets
that table in its place when the site is built (``mkdocs build --strict`` runs in the test
command), so the configuration and error-code pages cannot drift from the settings module and
the error catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from workers.http.openapi import document
from workers.runtime.answers import ERROR_CODES
from workers.runtime.loading import load_domains
from workers.runtime.settings import OPENTELEMETRY, documented

MARKER = re.compile(r"<!-- generated: (?P<name>[a-z-]+) -->")


def cell(text: str) -> str:
    """A Markdown table cell: a pipe in the text is escaped, a line break flattened."""
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    """Every setting: its environment variable, its default and what it does."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, default, doc in documented():
        shown = "" if default == "" else f"`{default}`"
        rows.append(f"| `{name}` | {shown} | {cell(doc)} |")
    return "\n".join(rows)


def opentelemetry_table() -> str:
    """The standard OpenTelemetry variables the SDK reads itself: ours to document, not to parse."""
    rows = ["| OpenTelemetry variable | default | meaning |", "|---|---|---|"]
    for name, default, doc in OPENTELEMETRY:
        shown = "" if default == "" else f"`{default}`"
        rows.append(f"| `{name}` | {shown} | {cell(doc)} |")
    return "\n".join(rows)


def error_codes_table() -> str:
    """Every error code of the catalogue: its status, its cause and the fix."""
    rows = ["| code | HTTP status | cause | fix |", "|---|---|---|---|"]
    rows += [f"| `{e.code}` | {e.status} | {cell(e.cause)} | {cell(e.fix)} |" for e in ERROR_CODES]
    return "\n".join(rows)


EXAMPLES = "workers.examples.domains:default_domains"
"""The domains the HTTP reference is drawn for, by name (nothing imports the examples)."""


def operations_table() -> str:
    """Every operation of the OpenAPI document a fleet of the example domains serves: method,
    path, what it does and every status it may answer."""
    doc = document(load_domains(EXAMPLES), auth="jwt")
    rows = ["| method | path | what | answers |", "|---|---|---|---|"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            statuses = ", ".join(sorted(op["responses"]))
            rows.append(f"| `{method.upper()}` | `{path}` | {cell(op['summary'])} | {statuses} |")
    return "\n".join(rows)


TABLES: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "opentelemetry": opentelemetry_table,
    "error-codes": error_codes_table,
    "operations": operations_table,
}


class UnknownTable(LookupError):
    """A page names a generated table that does not exist."""


def generate(markdown: str) -> str:
    """``markdown`` with each ``<!-- generated: NAME -->`` replaced by that table."""

    def table(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise UnknownTable(
                f"<!-- generated: {name} --> names no table; the tables are {sorted(TABLES)}"
            )
        return TABLES[name]()

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, **_: object) -> str:
    """The mkdocs hook: generated tables filled in before the page is rendered."""
    return generate(markdown)
