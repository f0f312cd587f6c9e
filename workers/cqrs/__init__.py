"""The CQRS command side after jetbasrawi/go.cqrs: commands, dispatcher, aggregate root, repository.

Application code wires a ``Dispatcher``, registers handlers (``register_account`` for the
account commands, or ``AggregateHandler(domain, decide, ...)`` for its own) and calls
``await dispatcher.dispatch(WithdrawMoney(aggregate_id="42", amount=30))``.
"""

from __future__ import annotations

from workers.cqrs.account import (
    CloseAccount,
    DepositMoney,
    OpenAccount,
    WithdrawMoney,
    register_account,
)
from workers.cqrs.aggregate import AggregateRoot, StateRejected
from workers.cqrs.commands import AppendEvent, Command, NamedCommand, new_command
from workers.cqrs.dispatcher import CommandHandler, Dispatcher, UnknownCommand
from workers.cqrs.documents import AggregateFactory, DocumentAggregate, DocumentHandler
from workers.cqrs.handlers import AggregateHandler, Decide, Handled, Publisher
from workers.cqrs.repository import Repository
from workers.cqrs.trading import CancelOrder, PlaceOrder, register_trading

__all__ = [
    "AggregateFactory",
    "AggregateHandler",
    "AggregateRoot",
    "AppendEvent",
    "CancelOrder",
    "CloseAccount",
    "Command",
    "CommandHandler",
    "Decide",
    "DepositMoney",
    "Dispatcher",
    "DocumentAggregate",
    "DocumentHandler",
    "Handled",
    "NamedCommand",
    "OpenAccount",
    "PlaceOrder",
    "Publisher",
    "Repository",
    "StateRejected",
    "UnknownCommand",
    "WithdrawMoney",
    "new_command",
    "register_account",
    "register_trading",
]
