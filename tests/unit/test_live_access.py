"""Who may subscribe: a live subscription is a read, judged by the domain's read rule for the
token's principal (the door's actor); with the door open no rule applies. The per-principal
limit counts the principal, not the address, once identity is on."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from snapshot_rules.access import Access, read_with_roles
from snapshot_rules.domain import Domains
from topics.envelope import Actor
from topics.errors import Forbidden
from workers.examples.domains.chat_room import CHAT_ROOM
from workers.http.live.streams import authorize_read, principal_of

GUARDED = replace(CHAT_ROOM, access=Access(read=read_with_roles("auditor")))


@dataclass
class FakeDoor:
    """The door as the live routes use it: who calls (None: the door is open)."""

    who: Actor | None

    def actor(self, request: Any) -> Actor | None:
        return self.who


@dataclass
class FakeRuntime:
    domains: Domains


@dataclass
class FakeFleet:
    door: FakeDoor
    runtime: FakeRuntime


@dataclass
class FakeRequest:
    remote: str = "10.0.0.9"


def fleet_for(actor: Actor | None) -> Any:
    return FakeFleet(FakeDoor(actor), FakeRuntime(Domains([GUARDED])))


def test_a_principal_without_the_read_role_is_refused_every_live_route() -> None:
    mallory = fleet_for(Actor("mallory", ("viewer",)))
    for aggregate_id in ("room-1", None):  # an aggregate, a room view or socket; a whole type
        with pytest.raises(Forbidden) as refused:
            authorize_read(mallory, FakeRequest(), "chat_room", aggregate_id)  # type: ignore[arg-type]
        assert refused.value.reason == "read_refused" and "mallory" in str(refused.value)


def test_a_principal_with_the_role_reads_and_an_open_door_applies_no_rule() -> None:
    authorize_read(fleet_for(Actor("ann", ("auditor",))), FakeRequest(), "chat_room", "r")  # type: ignore[arg-type]
    authorize_read(fleet_for(None), FakeRequest(), "chat_room", "r")  # type: ignore[arg-type]
    authorize_read(fleet_for(Actor("x")), FakeRequest(), "no_such_type", "r")  # type: ignore[arg-type]


def test_the_limit_counts_the_principal_not_the_address() -> None:
    request = FakeRequest()
    assert principal_of(fleet_for(Actor("ann")), request) == "ann"  # type: ignore[arg-type]
    assert principal_of(fleet_for(None), request) == "10.0.0.9"  # type: ignore[arg-type]
