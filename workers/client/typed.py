"""Typed event data: the base of the models ``python -m workers.client.codegen events`` writes
from a fleet's declared domains, and the two conversions the client makes with them.

A generated model is a frozen msgspec Struct per event type, with its declared bounds
(``Meta``), its aggregate and event type as class constants::

    from myapp.fleet import order
    await client.append("order", "o-1", order.OrderPaid(amount=12.5))  # checked, then sent
    async for event in client.events("order", "o-1"):
        match order.data(event):  # the event's data as its type's model
            case order.OrderPaid(amount=amount): ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, TypeVar

import msgspec

from workers.client._base import ArgumentError
from workers.client.models import Event

__all__ = ["EventData", "data_of", "sendable"]

D = TypeVar("D", bound="EventData")


class EventData(msgspec.Struct, frozen=True, kw_only=True):
    """The data of one event type of one domain (generated: see the module)."""

    aggregate_type: ClassVar[str]
    event_type: ClassVar[str]


def sendable(model: EventData) -> dict[str, object]:
    """``model`` as the ``data`` of an append, checked against its declared bounds first (a
    Struct's constructor checks types only): ``ArgumentError`` names the field and the bound."""
    data = msgspec.to_builtins(model)
    try:
        msgspec.convert(data, type(model))
    except msgspec.ValidationError as e:
        raise ArgumentError(
            f"{model.aggregate_type}.{model.event_type}: {e}; the fleet would refuse it "
            "(422 invalid_data): fix that field."
        ) from e
    return dict(data)


def data_of(event: Event, models: Mapping[str, type[D]]) -> D:
    """``event.data`` as the model of its type in ``models``: ``ValueError`` for a type the
    models do not know (a newer domain: generate them again) or data outside its declaration."""
    model = models.get(event.type)
    if model is None:
        raise ValueError(
            f"{event.aggregate_type} event {event.id} is of type {event.type!r}, which these "
            f"models do not know ({', '.join(sorted(models))}); generate them again from the "
            "domains the fleet runs."
        )
    try:
        return msgspec.convert(event.data, model)
    except msgspec.ValidationError as e:
        raise ValueError(
            f"{event.aggregate_type} event {event.id} ({event.type}, schema version "
            f"{event.schema_version}): {e}; the models are older or newer than the domain."
        ) from e
