"""Every command's --help says each option's default once (argparse's formatter adds one unless
the help already says it)."""

from __future__ import annotations

import argparse

from workers.cli import parser


def _commands(root: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [root]
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_commands(sub))
    return found


def test_each_option_names_its_default_at_most_once() -> None:
    commands = _commands(parser())
    assert len(commands) > 10  # the walk reached the subcommands
    twice = []
    for command in commands:
        for action in command._actions:
            shown = command._get_formatter()._expand_help(action) if action.help else ""
            if shown.count("(default") > 1:
                twice.append(f"{command.prog} {'/'.join(action.option_strings)}: {shown}")
    assert not twice, twice


def test_a_default_not_in_the_help_is_added() -> None:
    bench = next(c for c in _commands(parser()) if c.prog.endswith(" bench"))
    events = next(a for a in bench._actions if "--events" in a.option_strings)
    assert "(default: 20000)" in bench._get_formatter()._expand_help(events)
