"""Example domain **chat_room** (async, marker-validated): messages sent, edited and deleted.

**Bounded by design.** A room lives for years; its state must not grow with it (a snapshot or a
view document over 16 MB cannot be stored). The state keeps the room's newest messages only, at
most ``window`` (declared, default 100: the recent history a chat shows on joining), plus
counts, and the read receipts of at most ``readers`` members (declared, default 1000; the least
recently read leaves first: see ``chat_rules``).
``horizon`` says where the window starts: every live message sent at a version >= horizon is
in it; older pages come from the event store, by version, walking backwards over the events
(``chat_pages``), never by folding the whole room.

**Who may change a message.** Every event carries the actor (``sender_id``, on every chat
event), which ``chat_access`` takes from the token, never from the body. The sender or a
declared moderator role (``role`` on the edit or delete, written from the token's roles) may
edit or delete it; a deleted message stays deleted. The marker cannot enforce this: it keeps
only the room's last event *type* and id, while the sender of message m is in m's
``MessageSent``, possibly thousands of events back, and reading it per request would make every
chat request a store read. So the fold enforces it, wherever the message is known: ``step`` here
(the replayed window and the ``chat_messages`` view) and the backwards pages (``chat_pages``)
run the same rule and *ignore* an event that breaks it. With identity on, the door and the store
(``chat_access``'s store check) refuse such a change for a message the window holds; one stored
anyway (beyond the window, with the door open, or before the store judged access) changes no
message, in the view and in replay alike. Message ids are unique per room (clients use UUIDs); a
repeated id is ignored while the first is in the window.

**Schema versions.** ``MessageDeleted`` carried no actor before issue 14 (schema version 1:
anyone could delete). Those stored events are read as version 2 by an upcaster: deleted by
``sender_id="unknown"`` acting as the first moderator role, so old histories keep their meaning.
"""

from __future__ import annotations

from collections.abc import Iterable

from snapshot_rules.domain import NEW, Domain, Route, Upcast, event
from snapshot_rules.personal import personal
from snapshot_rules.projection import Projection
from snapshot_rules.queries import Query
from snapshot_rules.rules import every
from snapshot_rules.schema import Text, fields, optional
from workers.examples.domains.chat_access import chat_access
from workers.examples.domains.chat_pages import room_messages_query
from workers.examples.domains.chat_rules import (
    DEFAULT_READERS,
    DEFAULT_WINDOW,
    DELETED,
    EDITED,
    LEGACY_ACTOR,
    MAX_CONTENT,
    MAX_READERS,
    MAX_WINDOW,
    READ,
    SENT,
    ChatRules,
    Message,
    iso,
    unread_counts,
)

__all__ = [
    "CHAT_MESSAGES",
    "CHAT_ROOM",
    "CHAT_RULES",
    "DEFAULT_READERS",
    "DEFAULT_WINDOW",
    "DELETED",
    "EDITED",
    "LEGACY_ACTOR",
    "READ",
    "ROOM_MESSAGES",
    "SENT",
    "ChatRules",
    "Message",
    "apply_chat_view",
    "chat_room_domain",
    "iso",
    "reduce_chat_room",
    "unread_counts",
]
_ID = Text(max_length=128)


def chat_room_domain(
    *,
    window: int = DEFAULT_WINDOW,
    moderator_roles: Iterable[str] = ("moderator",),
    readers: int = DEFAULT_READERS,
) -> Domain:
    """The chat room domain keeping ``window`` messages and the receipts of ``readers``
    members (the least recently read leaves first); ``moderator_roles`` may delete any."""
    roles = frozenset(moderator_roles)
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"chat_room window must be from 1 to {MAX_WINDOW} messages, got {window}")
    if isinstance(readers, bool) or not isinstance(readers, int) or not 1 <= readers <= MAX_READERS:
        raise ValueError(
            f"chat_room readers must be a whole number from 1 to {MAX_READERS} members, got "
            f"{readers!r}: it bounds the receipts a room's state keeps."
        )
    if not roles or any(not isinstance(r, str) or not r for r in roles):
        raise ValueError(
            "chat_room needs at least one moderator role (a non-empty string): old deletes "
            "(schema version 1, before deletes carried their actor) are read as a moderator's."
        )
    rules = ChatRules(window, roles, readers)
    messages = Projection(
        "chat_messages", "chat_messages", frozenset(["chat_room"]), rules.apply_view
    )
    text = fields(closed=True, message_id=_ID, sender_id=_ID, content=Text(MAX_CONTENT))
    chat = [SENT, EDITED, DELETED, READ]
    return Domain(
        name="chat_room",
        events={
            SENT: event(text, after=[NEW, *chat]),
            # sender_id on an edit or delete: who asks, compared with the message's sender;
            # role: the moderator role of the asker's token (written by chat_access, never sent).
            EDITED: event(
                fields(
                    closed=True,
                    message_id=_ID,
                    sender_id=_ID,
                    content=Text(MAX_CONTENT),
                    role=optional(_ID),
                ),
                after=chat,
            ),
            DELETED: event(
                fields(closed=True, message_id=_ID, sender_id=_ID, role=optional(_ID)),
                after=chat,
                upcasts=[Upcast(fields(closed=True, message_id=_ID), rules.lift_delete)],
            ),
            # A read receipt: every message up to this one is read by reader_id.
            READ: event(fields(closed=True, reader_id=_ID, up_to_message_id=_ID), after=chat),
        },
        reducer=rules.reduce,
        # The state is bounded (window and receipts), so a snapshot stays small; every 100 events
        # bounds any replay.
        snapshot_rule=every(100),
        routes=(Route("chat"),),
        projections=(messages,),
        queries=(
            Query(
                "/v1/rooms/{room_id}/messages",
                room_messages_query(rules, messages),
                aggregate_param="room_id",  # the read rule sees the room's id
            ),
        ),
        access=chat_access(rules),
        # A message's words are its sender's: sealed with the sender's key, erased with it.
        personal=personal("content", subject="sender_id"),
    )


CHAT_ROOM = chat_room_domain()
CHAT_MESSAGES = CHAT_ROOM.projections[0]
ROOM_MESSAGES = CHAT_ROOM.queries[0]
CHAT_RULES = ChatRules()
reduce_chat_room = CHAT_ROOM.reducer
apply_chat_view = CHAT_MESSAGES.apply
