"""Who may do what in a chat room: the actor is the token's subject, never a field of the body.

``MessageSent.sender_id`` is the principal (filled from it when absent, ``403`` when it names
someone else). An edit or delete is the message's sender's, or a moderator's: a principal
whose *token* carries a moderator role; a ``role`` in the body is refused, and the rule writes
the token's role into the stored event, where the fold reads it. The check runs on the room's
replayed window before anything is marked or produced; a message beyond the window (an old
page) is judged by the fold, which ignores a change by anyone else (``chat_rules``).

The store repeats the edit and delete check (``at_store``) on the event as stored, with the
actor of its ``metadata.actor`` and the window at its predecessor: a change produced straight
to a topic, with another's actor, a ``sender_id`` or ``role`` its actor does not hold, or no
actor at all, is refused there and never stored.
"""

from __future__ import annotations

from collections.abc import Mapping

from snapshot_rules.access import Access, SendRule
from topics.envelope import Actor
from topics.errors import Forbidden
from topics.jsonvalue import Json, JsonObject
from workers.examples.domains.chat_rules import DELETED, EDITED, READ, SENT, ChatRules, find


def _as_self(actor: Actor, data: Mapping[str, Json], field: str = "sender_id") -> JsonObject:
    """``data`` with ``field`` the actor's: filled when absent, refused when another's."""
    given = data.get(field)
    if given is not None and given != actor.principal:
        raise Forbidden(
            "not_your_identity",
            f"{field} {given!r} is not you ({actor.principal}); leave {field} out, it is "
            "taken from your token.",
        )
    return {**data, field: actor.principal}


def chat_access(rules: ChatRules) -> Access:
    """The chat room's access rules for ``rules``' moderator roles."""

    def send(actor: Actor, data: Mapping[str, Json], state: Json) -> Mapping[str, Json]:
        return _as_self(actor, data)

    def change(actor: Actor, data: Mapping[str, Json], state: Json) -> Mapping[str, Json]:
        if "role" in data:
            raise Forbidden(
                "role_from_token",
                "a role is never taken from the body; a moderator's role comes from the token.",
            )
        checked = _as_self(actor, data)
        moderating = sorted(set(actor.roles) & rules.moderator_roles)
        messages = (state or {}).get("messages", [])
        found = find(messages, data.get("message_id"))
        if found is not None and messages[found]["sender_id"] != actor.principal and not moderating:
            moderators = ", ".join(sorted(rules.moderator_roles))
            raise Forbidden(
                "not_your_message",
                f"message {data.get('message_id')!r} is {messages[found]['sender_id']}'s; only its "
                f"sender or a moderator ({moderators}) may change it.",
            )
        return {**checked, "role": moderating[0]} if moderating else checked

    def change_at_store(actor: Actor, data: Mapping[str, Json], state: Json) -> None:
        if data.get("sender_id") != actor.principal:
            raise Forbidden(
                "not_your_identity",
                f"sender_id {data.get('sender_id')!r} is not its actor ({actor.principal}).",
            )
        role = data.get("role")
        if role is not None and (role not in actor.roles or role not in rules.moderator_roles):
            raise Forbidden(
                "role_from_token",
                f"role {role!r} is not a moderator role of its actor's token "
                f"({', '.join(actor.roles) or 'no roles'}).",
            )
        messages = (state or {}).get("messages", [])
        found = find(messages, data.get("message_id"))
        if found is not None and messages[found]["sender_id"] != actor.principal and role is None:
            raise Forbidden(
                "not_your_message",
                f"message {data.get('message_id')!r} is {messages[found]['sender_id']}'s; "
                f"{actor.principal} is neither its sender nor a moderator.",
            )

    def receipt(actor: Actor, data: Mapping[str, Json], state: Json) -> Mapping[str, Json]:
        return _as_self(actor, data, "reader_id")

    changing = SendRule(change, needs_state=True, at_store=change_at_store)
    return Access(
        send={SENT: SendRule(send), EDITED: changing, DELETED: changing, READ: SendRule(receipt)}
    )
