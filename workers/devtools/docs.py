"""The documentation site's generated reference: tables made from the code, never copied.

``mkdocs.yml`` names this module as a hook: a page holding ``<!-- generated: NAME -->`` gets
that table in its place when the site is built (``mkdocs build --strict`` runs in the test
command), so the configuration and error-code pages cannot drift from the settings module and
the error catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from workers.devtools.docs_http import cell, code, reference, table
from workers.ports import CAPABILITIES
from workers.runtime.error_codes import ERROR_CODES
from workers.runtime.loading import load_domains
from workers.runtime.settings import OPENTELEMETRY, documented

MARKER = re.compile(r"<!-- generated: (?P<name>[a-z-]+) -->")


def settings_table() -> str:
    """Every setting: its environment variable, its default and what it does."""
    return _variables("variable", documented())


def opentelemetry_table() -> str:
    """The standard OpenTelemetry variables the SDK reads itself: ours to document, not to parse."""
    return _variables("OpenTelemetry variable", OPENTELEMETRY)


def _variables(first: str, variables: Iterable[tuple[str, object, str]]) -> str:
    """Environment variables, each with its default and what it does."""
    rows = [(code(n), "" if d == "" else code(d), cell(doc)) for n, d, doc in variables]
    return "\n".join(table((first, "default", "meaning"), rows))


def error_codes_table() -> str:
    """Every error code of the catalogue: its status, its cause and the fix."""
    rows = [(code(e.code), e.status, cell(e.cause), cell(e.fix)) for e in ERROR_CODES]
    return "\n".join(table(("code", "HTTP status", "cause", "fix"), rows))


def capabilities_table() -> str:
    """Every optional capability of an event store: its port, who needs it, the fallback."""
    rows = [
        (code(c.name), code(c.port.__name__), cell(c.used_by), cell(c.fallback))
        for c in CAPABILITIES
    ]
    return "\n".join(table(("capability", "port", "needed by", "without it"), rows))


EXAMPLES = "workers.examples.domains:default_domains"
"""The domains the HTTP reference is drawn for, by name (nothing imports the examples)."""
__all__ = ["TABLES", "UnknownTable", "cell", "code", "generate", "on_page_markdown"]


def operations_reference() -> str:
    """Every route once, as declared, for a fleet of the example domains (``docs_http``)."""
    return reference(load_domains(EXAMPLES))


TABLES: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "opentelemetry": opentelemetry_table,
    "error-codes": error_codes_table,
    "capabilities": capabilities_table,
    "operations": operations_reference,
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
