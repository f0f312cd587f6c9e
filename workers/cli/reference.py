"""The command line's reference, generated from the parser itself: a hook of ``mkdocs.yml`` (run
before ``workers/devtools/docs.py``) puts every command and action, its synopsis and what it
does in place of ``<!-- generated: cli -->``; nothing is copied by hand."""

from __future__ import annotations

import argparse
import re

from workers.cli.args import parser

MARKER = "<!-- generated: cli -->"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _synopsis(command: argparse.ArgumentParser) -> str:
    usage = " ".join(command.format_usage().split()).removeprefix("usage: ")
    return re.sub(r"\[-h\] ", "", usage)


def _children(command: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def cli_table() -> str:
    """Every command (and each action of one that has actions): its synopsis and description."""
    rows = ["| command | does |", "|---|---|"]
    for _, command in _children(parser()):
        actions = _children(command)
        for _, shown in actions or [("", command)]:
            rows.append(f"| `{_cell(_synopsis(shown))}` | {_cell(shown.description or '')} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: object) -> str:
    """The mkdocs hook: the command table filled in before the page is rendered."""
    return markdown.replace(MARKER, cli_table()) if MARKER in markdown else markdown
