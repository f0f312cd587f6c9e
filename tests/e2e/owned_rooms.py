"""The chat room with a per-aggregate read rule: "rooms named ``alice-…`` are alice's"; beside
it the open order (async) and account (sync) domains.

The rule is strict: it refuses ``None`` (a read of no single aggregate), so a route that passes
None instead of the room's id refuses alice her own room. Every call is appended to the file
``OWNED_ROOMS_LOG`` names (when set), one ``principal<TAB>aggregate id or -`` line per call,
so a test in another process sees which id each route handed to the rule.
"""

from __future__ import annotations

import os
from dataclasses import replace

from snapshot_rules.access import Access
from snapshot_rules.domain import Domains
from topics.envelope import Actor
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.chat_room import CHAT_ROOM
from workers.examples.domains.order import ORDER

LOG_ENV = "OWNED_ROOMS_LOG"


def owner_reads(actor: Actor, aggregate_id: str | None) -> bool:
    """alice reads the rooms named ``alice-…``; no one reads "every room" (None)."""
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{actor.principal}\t{aggregate_id if aggregate_id is not None else '-'}\n")
    return aggregate_id is not None and aggregate_id.startswith(f"{actor.principal}-")


OWNED_ROOM = replace(
    CHAT_ROOM,
    access=Access(send=CHAT_ROOM.access.send, default=CHAT_ROOM.access.default, read=owner_reads),
)


def domains() -> Domains:
    """The owned chat room, and the open order (async) and account (sync) domains."""
    return Domains([OWNED_ROOM, ORDER, ACCOUNT])
