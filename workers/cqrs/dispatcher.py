"""The dispatcher: one handler per command type, and routing of each command to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from topics.errors import InvalidInput
from workers.cqrs.commands import Command
from workers.cqrs.handlers import Handled

C = TypeVar("C", bound=Command)

CommandHandler = Callable[[C], Awaitable[Handled]]
"""Handles one command: returns what it stored, or raises and leaves nothing behind."""


class UnknownCommand(InvalidInput):
    """No handler is registered for the command's type."""


class Dispatcher:
    """Routes each command to the one handler registered for its exact type."""

    def __init__(self) -> None:
        self._handlers: dict[type[Command], Callable[[Any], Awaitable[Handled]]] = {}

    def register(self, command_type: type[C], handler: CommandHandler[C]) -> None:
        """Make ``handler`` the handler of ``command_type``; a second one is a wiring bug."""
        if not (isinstance(command_type, type) and issubclass(command_type, Command)):
            raise TypeError(f"{command_type!r} is not a Command subclass")
        if command_type in self._handlers:
            raise ValueError(f"command {command_type.__name__} already has a handler")
        self._handlers[command_type] = handler

    def registered(self) -> list[str]:
        return sorted(command_type.__name__ for command_type in self._handlers)

    async def dispatch(self, command: Command) -> Handled:
        """Run the command's handler; UnknownCommand if its type has none."""
        handler = self._handlers.get(type(command))
        if handler is None:
            kind = type(command).__name__
            raise UnknownCommand(
                f"no handler is registered for command {kind}; registered: "
                f"{', '.join(self.registered()) or 'none'}. Register one with "
                f"Dispatcher.register({kind}, handler)."
            )
        return await handler(command)
