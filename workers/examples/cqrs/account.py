"""Typed commands of the account domain and their handlers: application code's CQRS entry point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from workers.cqrs.aggregate import AggregateRoot
from workers.cqrs.commands import Command
from workers.cqrs.dispatcher import Dispatcher
from workers.cqrs.handlers import AggregateHandler, Decide, Publisher
from workers.cqrs.repository import Repository
from workers.examples.domains.account import ACCOUNT
from workers.metrics import Metrics

C = TypeVar("C", bound=Command)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAccount(Command):
    """Open a new account for ``owner``."""

    owner: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositMoney(Command):
    """Add ``amount`` (minor units) to the balance."""

    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawMoney(Command):
    """Take ``amount`` (minor units) from the balance; refused if it would overdraw."""

    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseAccount(Command):
    """Close an account whose balance is 0."""


def open_account(aggregate: AggregateRoot, command: OpenAccount) -> None:
    aggregate.record("AccountOpened", {"owner": command.owner}, metadata=command.metadata)


def deposit_money(aggregate: AggregateRoot, command: DepositMoney) -> None:
    aggregate.record("MoneyDeposited", {"amount": command.amount}, metadata=command.metadata)


def withdraw_money(aggregate: AggregateRoot, command: WithdrawMoney) -> None:
    aggregate.record("MoneyWithdrawn", {"amount": command.amount}, metadata=command.metadata)


def close_account(aggregate: AggregateRoot, command: CloseAccount) -> None:
    aggregate.record("AccountClosed", {}, metadata=command.metadata)


def register_account(
    dispatcher: Dispatcher,
    *,
    repository: Repository,
    publisher: Publisher,
    metrics: Metrics | None = None,
    max_attempts: int = 5,
) -> None:
    """Register a handler for each account command on ``dispatcher``."""

    def handler(decide: Decide[C]) -> AggregateHandler[C]:
        return AggregateHandler(
            ACCOUNT,
            decide,
            repository=repository,
            publisher=publisher,
            metrics=metrics,
            max_attempts=max_attempts,
        )

    dispatcher.register(OpenAccount, handler(open_account))
    dispatcher.register(DepositMoney, handler(deposit_money))
    dispatcher.register(WithdrawMoney, handler(withdraw_money))
    dispatcher.register(CloseAccount, handler(close_account))
