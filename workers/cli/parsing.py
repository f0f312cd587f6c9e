"""How the ``eventfleet`` command line is declared: its parser, the help formatter that shows
defaults, the checked value types, and ``command`` that adds a command or an action."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeAlias

from snapshot_rules.declaration import did_you_mean
from workers.cli.shell import USAGE


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written, and ``(default: …)`` on every option that has a real default
    and whose help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or isinstance(action, argparse._HelpAction):
            return action.help
        if action.help is not None and "(default" in action.help:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """A usage error is one line naming the fix, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        message = _with_suggestion(message)
        command = self.prog.removeprefix("eventfleet").strip()
        where = f"{command}: " if command else ""
        print(f"eventfleet: error: {where}{message}; see '{self.prog} --help'", file=sys.stderr)
        raise SystemExit(USAGE)

    def parse_args(  # type: ignore[override]  # ours drops argparse's per-namespace overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """As argparse, but an unknown option is refused by the command it was given to, with
        the near option's name (``dev --prot 0``: did you mean '--port'?)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._chosen(parsed)
            options = [o for o in command._option_string_actions if o.startswith("--")]
            hints = "".join(
                did_you_mean(word.split("=", 1)[0], options)
                for word in extras
                if word.startswith("-")
            )
            command.error(f"unrecognized arguments: {' '.join(extras)}{hints}")
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> Parser:
        """The subcommand's parser that ``parsed`` went through (this one if none)."""
        for action in self._subparsers._group_actions if self._subparsers else ():
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(parsed, action.dest or "", None) or "")
                if isinstance(chosen, Parser):
                    return chosen._chosen(parsed)
        return self


Commands: TypeAlias = "argparse._SubParsersAction[Parser]"
"""Where a command, or an action of one, is added."""


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)\Z")


def _with_suggestion(message: str) -> str:
    """argparse's "invalid choice" with the near name, when there is one."""
    found = _INVALID_CHOICE.search(message)
    if found is None:
        return message
    choices = re.findall(r"'([^']*)'", found.group(2))
    hint = did_you_mean(found.group(1), choices)
    return (
        message[: found.start()]
        + f"invalid choice: {found.group(1)!r}{hint} "
        + (f"(choose from {found.group(2)})")
    )


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"at least {minimum}"
    return parse


def port(raw: str) -> int:
    """An argparse type: a TCP port, 0 meaning any free one."""
    value = at_least(0)(raw)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {value}")
    return value


def positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value:g}")
    return value


def command(commands: Commands, name: str, summary: str, description: str) -> Parser:
    """Add command (or action) ``name``: ``summary`` in its parent's list, ``description`` atop
    its own help."""
    return commands.add_parser(
        name, help=summary, description=description, formatter_class=Formatter
    )
