"""The CQRS command side after jetbasrawi/go.cqrs: commands, dispatcher, aggregate root, repository.

Application code wires a ``Dispatcher``, registers handlers (``AggregateHandler(domain,
decide, ...)`` per command type, or ``register_aggregate`` for a domain's commands at once) and
calls ``await dispatcher.dispatch(command)``; the account and order-book commands of
``workers.examples.cqrs`` show it whole.
"""

from __future__ import annotations

from workers.cqrs.aggregate import AggregateRoot, StateRejected
from workers.cqrs.commands import AppendEvent, Command, NamedCommand, new_command
from workers.cqrs.dispatcher import CommandHandler, Dispatcher, UnknownCommand, register_aggregate
from workers.cqrs.documents import AggregateFactory, DocumentAggregate, DocumentHandler
from workers.cqrs.handlers import AggregateHandler, Decide, Handled, Publisher
from workers.cqrs.repository import Repository

__all__ = [
    "AggregateFactory",
    "AggregateHandler",
    "AggregateRoot",
    "AppendEvent",
    "Command",
    "CommandHandler",
    "Decide",
    "Dispatcher",
    "DocumentAggregate",
    "DocumentHandler",
    "Handled",
    "NamedCommand",
    "Publisher",
    "Repository",
    "StateRejected",
    "UnknownCommand",
    "new_command",
    "register_aggregate",
]
