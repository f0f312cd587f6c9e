"""The dispatcher: one handler per command type, and routing of each command to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Never, TypeVar, cast

from snapshot_rules.domain import Domain
from topics.errors import InvalidInput
from workers.cqrs.commands import Command, NamedCommand
from workers.cqrs.handlers import AggregateHandler, Decide, Handled, Publisher
from workers.cqrs.repository import Repository
from workers.metrics import Metrics

C = TypeVar("C", bound=Command)

CommandHandler = Callable[[C], Awaitable[Handled]]
"""Handles one command: returns what it stored, or raises and leaves nothing behind."""


class UnknownCommand(InvalidInput):
    """No handler is registered for the command's type."""


class Dispatcher:
    """Routes each command to the one handler registered for its exact type, or for its name.

    Typed commands (subclasses of ``Command``) route by class; a ``NamedCommand`` (a name and a
    payload: ``new_command("CreateUser", id, payload)``) routes by its name.
    """

    def __init__(self) -> None:
        # Keyed by exact class (or name) and only ever called with that class: see dispatch.
        self._handlers: dict[type[Command] | str, CommandHandler[Command]] = {}

    def register(self, command: type[C] | str, handler: CommandHandler[C]) -> None:
        """Make ``handler`` the handler of ``command`` (a Command subclass, or a command name)."""
        if isinstance(command, str):
            if not command or not command.isidentifier():
                raise ValueError(
                    f"command name {command!r} must be an identifier, e.g. 'CreateUser'"
                )
        elif not (isinstance(command, type) and issubclass(command, Command)):
            raise TypeError(f"{command!r} is not a Command subclass or a command name")
        if command in self._handlers:
            shown = command if isinstance(command, str) else command.__name__
            raise ValueError(f"command {shown} already has a handler")
        # The handler takes C only; dispatch calls it only with a command whose exact class is C
        # (or, for a name, with the NamedCommand of that name), so erasing C here is sound.
        self._handlers[command] = cast("CommandHandler[Command]", handler)

    def registered(self) -> list[str]:
        return sorted(c if isinstance(c, str) else c.__name__ for c in self._handlers)

    async def dispatch(self, command: Command) -> Handled:
        """Run the command's handler; UnknownCommand if its type (or name) has none."""
        handler = self._handlers.get(type(command))
        if handler is None and isinstance(command, NamedCommand):
            handler = self._handlers.get(command.command)
        if handler is None:
            kind = command.name
            raise UnknownCommand(
                f"no handler is registered for command {kind}; registered: "
                f"{', '.join(self.registered()) or 'none'}. Register one with "
                f"Dispatcher.register({kind!r} or its class, handler)."
            )
        return await handler(command)


def register_aggregate(
    dispatcher: Dispatcher,
    domain: Domain,
    decisions: Mapping[type[Command], Decide[Never]],
    *,
    repository: Repository,
    publisher: Publisher,
    metrics: Metrics | None = None,
    max_attempts: int = 5,
) -> None:
    """Register one ``AggregateHandler`` of ``domain`` per command type, deciding as given.

    ``decisions`` maps each command class to its ``decide(aggregate, command)``; every handler
    shares the repository, the publisher and the retry bound. Each decide takes its own command
    class, so the mapping holds ``Decide[Never]``: a decide for some one class, the key's.
    """
    for command, decide in decisions.items():
        # Sound for the reason register gives: this handler only ever gets ``command``'s class.
        erased = cast("Decide[Command]", decide)
        dispatcher.register(
            command,
            AggregateHandler(
                domain,
                erased,
                repository=repository,
                publisher=publisher,
                metrics=metrics,
                max_attempts=max_attempts,
            ),
        )
