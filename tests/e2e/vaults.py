"""The domains of the multi-aggregate append's fleet: two sync domains (the account, and a vault
only its owner may fill), an async one (the order) and a storage one (``game_states``).

``EVENTFLEET_DOMAINS=tests.e2e.vaults:domains``. The vault's access rule reads the vault's
state (``needs_state``): its owner is the principal that opened it (taken from the token,
never from the body), and only that principal may deposit into it.
"""

from __future__ import annotations

from snapshot_rules.access import Access, Data, SendRule, State
from snapshot_rules.domain import NEW, Domain, Domains, Mode, event
from snapshot_rules.replay import State as Folded
from snapshot_rules.schema import Number, Text, fields
from topics.envelope import Actor, Event
from topics.errors import Forbidden
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.storage import storage_domain


def _opened_by(actor: Actor, data: Data, state: State | None) -> Data:
    return {**data, "owner": actor.principal}


def _owner_only(actor: Actor, data: Data, state: State | None) -> Data:
    owner = state.get("owner") if isinstance(state, dict) else None
    if owner != actor.principal:
        raise Forbidden("not_your_vault", f"{actor.principal} does not own this vault ({owner}).")
    return data


def _fold(state: Folded | None, e: Event) -> Folded:
    if e.type == "VaultOpened":
        return {"owner": e.data["owner"], "coins": 0}
    return {**(state or {}), "coins": (state or {}).get("coins", 0) + e.data["coins"]}


SENDS = {
    "VaultOpened": SendRule(_opened_by),
    "CoinsStored": SendRule(_owner_only, needs_state=True),
}

VAULT = Domain(
    name="vault",
    events={
        "VaultOpened": event(fields(closed=True, owner=Text(max_length=100)), after=[NEW]),
        "CoinsStored": event(fields(closed=True, coins=Number(positive=True, integer=True))),
    },
    reducer=_fold,
    mode=Mode.SYNC,
    access=Access(send=SENDS),
)


def domains() -> Domains:
    games = storage_domain("game_states", type_prefix="GameState")
    return Domains([ACCOUNT, VAULT, ORDER, games])
