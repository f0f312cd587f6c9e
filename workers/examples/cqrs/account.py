"""Typed commands of the account domain and their handlers: application code's CQRS entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Never

from workers.cqrs.aggregate import AggregateRoot
from workers.cqrs.commands import Command
from workers.cqrs.handlers import Decide


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


COMMANDS: Mapping[type[Command], Decide[Never]] = {
    OpenAccount: open_account,
    DepositMoney: deposit_money,
    WithdrawMoney: withdraw_money,
    CloseAccount: close_account,
}
"""Each command and how it decides: ``register_aggregate(dispatcher, ACCOUNT, COMMANDS, ...)``."""
