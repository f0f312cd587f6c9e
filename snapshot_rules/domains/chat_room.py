"""Example domain **chat_room** (async, marker-validated): messages sent, edited and deleted.

The marker only knows the room's last event *type*, so it cannot tell whose message an
edit targets or whether that message still exists. Those rules are enforced where the
whole room is known, by the fold itself: the replay reducer here and the ``chat_messages``
view (workers.runtime.chat) both call ``step_messages``, which *ignores* an edit of someone else's,
a deleted or an unknown message, a delete of an unknown message and a repeated message id,
and counts it in ``ignored``. The event stays in the store (it happened: it was requested
and accepted), but it changes no message, in the view and in replay alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from snapshot_rules.domain import NEW, Domain, Route, event
from snapshot_rules.replay import State
from snapshot_rules.rules import every
from snapshot_rules.schema import Text, fields
from topics.envelope import Event
from topics.errors import InvalidInput

SENT, EDITED, DELETED = "MessageSent", "MessageEdited", "MessageDeleted"
MAX_CONTENT = 4000
_ID = Text(max_length=128)

Message = dict[str, Any]
"""``{message_id, sender_id, content, sent_at, edited, edited_at}``; times are ISO-8601 UTC strings."""


def iso(moment: datetime) -> str:
    """Millisecond UTC text: the same in the view, in snapshots and in answers (no BSON dates)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _index(messages: Sequence[Message], message_id: Any) -> int | None:
    for index, message in enumerate(messages):
        if message["message_id"] == message_id:
            return index
    return None


def step_messages(messages: Sequence[Message], event: Event) -> list[Message] | None:
    """The room's messages after ``event``, or None when the room ignores it (see module doc).

    Pure: ``messages`` is not modified; a changed message is a new dict.
    """
    data = event.data
    found = _index(messages, data.get("message_id"))
    if event.type == SENT:
        if found is not None:
            return None  # a message id is unique among the room's live messages
        sent = {
            "message_id": data["message_id"],
            "sender_id": data["sender_id"],
            "content": data["content"],
            "sent_at": iso(event.occurred_at),
            "edited": False,
            "edited_at": None,
        }
        return [*messages, sent]
    if found is None:
        return None  # unknown or already deleted
    if event.type == EDITED:
        target = messages[found]
        if target["sender_id"] != data.get("sender_id"):
            return None  # only the sender may edit a message
        edited = {**target, "content": data["content"], "edited": True}
        edited["edited_at"] = iso(event.occurred_at)
        return [*messages[:found], edited, *messages[found + 1 :]]
    if event.type == DELETED:
        return [*messages[:found], *messages[found + 1 :]]
    return None


def reduce_chat_room(state: State | None, event: Event) -> State:
    """Fold one stored chat event: messages in order, edits applied, deleted ones gone."""
    current = state or {"messages": [], "ignored": 0}
    messages = step_messages(current["messages"], event)
    if messages is None:
        return {**current, "ignored": current["ignored"] + 1}
    return {**current, "messages": messages}


def window(messages: Sequence[Message], *, limit: int, before: str | None = None) -> list[Message]:
    """The bounded window a room query answers: the last ``limit`` messages before ``before``.

    Oldest first. ``before`` names a live message; raises InvalidInput when it names none.
    """
    end = len(messages)
    if before is not None:
        found = _index(messages, before)
        if found is None:
            raise InvalidInput(
                f"before={before!r} names no message of this room (it may have been deleted); "
                "page from the newest messages again."
            )
        end = found
    return list(messages[max(0, end - limit) : end])


_ANY_CHAT = [SENT, EDITED, DELETED]

CHAT_ROOM = Domain(
    name="chat_room",
    events={
        SENT: event(
            fields(closed=True, message_id=_ID, sender_id=_ID, content=Text(MAX_CONTENT)),
            after=[NEW, *_ANY_CHAT],
        ),
        # sender_id on an edit: who asks for it, compared with the message's sender by the fold.
        EDITED: event(
            fields(closed=True, message_id=_ID, sender_id=_ID, content=Text(MAX_CONTENT)),
            after=_ANY_CHAT,
        ),
        DELETED: event(fields(closed=True, message_id=_ID), after=_ANY_CHAT),
    },
    reducer=reduce_chat_room,
    # Rooms grow without end: a snapshot every 100 events bounds any replay to 100 events.
    snapshot_rule=every(100),
    routes=(Route("chat"),),
)
