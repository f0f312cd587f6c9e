"""The CQRS pieces that need no server: dispatcher routing and the aggregate root's decisions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from snapshot_rules.replay import Folded
from topics.envelope import Metadata, new_event
from topics.errors import (
    InvalidEnvelope,
    InvalidEventData,
    InvalidInput,
    TransitionRejected,
    UnknownEventType,
)
from workers.cqrs import (
    AggregateRoot,
    Command,
    Dispatcher,
    Handled,
    StateRejected,
    UnknownCommand,
)
from workers.examples.cqrs.account import DepositMoney, WithdrawMoney
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Command):
    """A command only these tests know."""

    note: str = ""


async def test_dispatch_routes_a_command_to_its_handler() -> None:
    seen: list[Command] = []

    async def handle_ping(command: Ping) -> Handled:
        seen.append(command)
        return Handled((), True)

    dispatcher = Dispatcher()
    dispatcher.register(Ping, handle_ping)
    ping = Ping(aggregate_id="p1", note="hello")
    assert await dispatcher.dispatch(ping) == Handled((), True)
    assert seen == [ping]
    assert dispatcher.registered() == ["Ping"]


async def test_unknown_command_is_a_clear_input_error() -> None:
    dispatcher = Dispatcher()

    async def handle_ping(command: Ping) -> Handled:
        return Handled((), True)

    dispatcher.register(Ping, handle_ping)
    with pytest.raises(UnknownCommand) as caught:
        await dispatcher.dispatch(WithdrawMoney(aggregate_id="a1", amount=5))
    message = str(caught.value)
    assert "no handler is registered for command WithdrawMoney" in message
    assert "registered: Ping" in message
    assert isinstance(caught.value, InvalidInput) and not caught.value.retriable


async def test_an_empty_dispatcher_names_no_handlers() -> None:
    with pytest.raises(UnknownCommand, match="registered: none"):
        await Dispatcher().dispatch(DepositMoney(aggregate_id="a1", amount=5))


def test_registering_twice_or_a_non_command_is_a_wiring_error() -> None:
    dispatcher = Dispatcher()

    async def handle(command: Ping) -> Handled:
        return Handled((), True)

    dispatcher.register(Ping, handle)
    with pytest.raises(ValueError, match="Ping already has a handler"):
        dispatcher.register(Ping, handle)
    with pytest.raises(TypeError, match="not a Command subclass"):
        dispatcher.register(str, handle)  # type: ignore[type-var, arg-type]


def _opened(balance: int) -> AggregateRoot:
    state = {"owner": "ann", "balance": balance, "status": "open"}
    return AggregateRoot(ACCOUNT, "a1", folded=Folded(state, 4), last_type="MoneyDeposited")


def test_record_numbers_folds_and_keeps_new_events() -> None:
    aggregate = _opened(10)
    meta = Metadata(client_id="c", command_id="k1")
    first = aggregate.record("MoneyDeposited", {"amount": 5}, metadata=meta)
    second = aggregate.record("MoneyWithdrawn", {"amount": 15})
    assert (first.version, second.version) == (5, 6)
    assert first.metadata == meta and first.aggregate_type == "account"
    assert aggregate.state == {"owner": "ann", "balance": 0, "status": "open"}
    assert (aggregate.original_version, aggregate.version) == (4, 6)
    assert aggregate.last_type == "MoneyWithdrawn"
    assert aggregate.mark_saved() == (first, second)
    assert (aggregate.original_version, aggregate.changes) == (6, ())


def test_a_rejection_names_the_aggregate_and_changes_nothing() -> None:
    aggregate = _opened(10)
    with pytest.raises(StateRejected) as caught:
        aggregate.record("MoneyWithdrawn", {"amount": 11})
    assert str(caught.value) == (
        "account a1 cannot take MoneyWithdrawn: withdrawing 11 would overdraw the balance of 10."
    )
    assert caught.value.current == "MoneyDeposited" and caught.value.allowed == ()
    assert isinstance(caught.value, TransitionRejected)
    assert aggregate.changes == () and aggregate.state is not None
    assert aggregate.state["balance"] == 10


def test_later_events_of_one_command_see_the_earlier_ones() -> None:
    aggregate = AggregateRoot(ACCOUNT, "new")
    aggregate.record("AccountOpened", {"owner": "bob"})
    with pytest.raises(StateRejected) as caught:
        aggregate.record("AccountOpened", {"owner": "bob"})
    assert caught.value.current == "AccountOpened"
    aggregate.record("AccountClosed", {})
    with pytest.raises(StateRejected, match="nothing may follow AccountClosed"):
        aggregate.record("MoneyDeposited", {"amount": 1})
    assert [e.type for e in aggregate.changes] == ["AccountOpened", "AccountClosed"]


@pytest.mark.parametrize(
    ("kind", "data", "error"),
    [
        ("MoneyMinted", {"amount": 1}, UnknownEventType),
        ("MoneyDeposited", {"amount": "1"}, InvalidEventData),
        ("MoneyDeposited", {"amount": 1, "$where": 1}, InvalidEventData),
    ],
)
def test_bad_input_is_refused_before_the_rules_run(
    kind: str, data: dict[str, object], error: type[Exception]
) -> None:
    aggregate = _opened(10)
    with pytest.raises(error):
        aggregate.record(kind, data)
    assert aggregate.changes == ()


def test_a_bad_aggregate_id_is_refused() -> None:
    aggregate = AggregateRoot(ACCOUNT, "has space")
    with pytest.raises(InvalidEnvelope, match="aggregate_id"):
        aggregate.record("AccountOpened", {"owner": "ann"})


def test_a_domain_without_a_validator_uses_its_declared_transitions() -> None:
    placed = new_event(
        "order", "o1", "OrderPlaced", {"items": [{"sku": "a", "qty": 1, "price": 2}]}
    )
    state = ORDER.reducer(None, placed.with_version(1))
    aggregate = AggregateRoot(ORDER, "o1", folded=Folded(state, 1), last_type="OrderPlaced")
    with pytest.raises(TransitionRejected) as caught:
        aggregate.record("OrderShipped", {"carrier": "ups"})
    assert caught.value.current == "OrderPlaced" and caught.value.allowed == ("OrderPaid",)
    assert aggregate.record("OrderPaid", {"amount": 2}).version == 2
