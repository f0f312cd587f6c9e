"""The chat room's fold: a bounded window of the newest messages, and the rule for changing one.

Pure and shared: the replayed state, the ``chat_messages`` view and the backwards pages of
older messages (``chat_pages``) all change messages with ``ChatRules.change``. See
``chat_room`` for why the fold, not the marker, enforces who may edit or delete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from snapshot_rules.projection import View
from snapshot_rules.replay import State
from topics.envelope import Event

SENT, EDITED, DELETED = "MessageSent", "MessageEdited", "MessageDeleted"
READ = "MessageRead"
"""A read receipt: ``reader_id`` has read every message up to ``up_to_message_id``."""
MAX_CONTENT = 4000
DEFAULT_WINDOW = 100
"""Messages a room's state keeps (the seed's "last 100 messages")."""
MAX_WINDOW = 1000
LEGACY_ACTOR = "unknown"
"""``sender_id`` of a delete stored before deletes carried their actor (schema version 1)."""
OUTCOMES = ("sent", "edited", "deleted", "ignored", "outside_window")
"""Counts in the state: ``outside_window`` are edits and deletes of messages the window does
not hold (older ones, whose pages apply them, or unknown ones)."""

Read = dict[str, Any]
"""One member's receipt in ``room["reads"][reader_id]``: ``{up_to_message_id, up_to_version,
unread}``; ``unread`` counts the live messages of others in the window after it. The key
``reads`` appears with the room's first receipt."""

Message = dict[str, Any]
"""``{message_id, sender_id, content, sent_at, edited, edited_at, version}``; times are
ISO-8601 UTC strings, ``version`` is the version of its ``MessageSent``."""


def iso(moment: datetime) -> str:
    """Millisecond UTC text: the same in the view, in snapshots and in answers (no BSON dates)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def find(messages: Sequence[Message], message_id: Any) -> int | None:
    for index, message in enumerate(messages):
        if message["message_id"] == message_id:
            return index
    return None


def sent_message(event: Event) -> Message:
    data = event.data
    return {
        "message_id": data["message_id"],
        "sender_id": data["sender_id"],
        "content": data["content"],
        "sent_at": iso(event.occurred_at),
        "edited": False,
        "edited_at": None,
        "version": event.version,
    }


@dataclass(frozen=True, slots=True)
class ChatRules:
    """A room's declared bounds and roles, and the one rule for changing a message."""

    window: int = DEFAULT_WINDOW
    moderator_roles: frozenset[str] = frozenset({"moderator"})

    def change(self, message: Message, event: Event) -> Message | str | None:
        """``message`` after an edit or delete: the new message, None (deleted) or "ignored"."""
        data = event.data
        if event.type == EDITED:
            own = data.get("sender_id") == message["sender_id"]
            if not own and data.get("role") not in self.moderator_roles:
                return "ignored"  # only the sender or a moderator may edit a message
            return {**message, "content": data["content"], "edited": True,
                    "edited_at": iso(event.occurred_at)}  # fmt: skip
        if event.type == DELETED:
            own = data.get("sender_id") == message["sender_id"]
            return None if own or data.get("role") in self.moderator_roles else "ignored"
        return "ignored"

    def step(self, room: State, event: Event) -> tuple[State, str]:
        """The room's window after one event, and what the event did (one of OUTCOMES). Pure."""
        messages: list[Message] = room["messages"]
        found = find(messages, event.data.get("message_id"))
        if event.type == SENT:
            if found is not None:
                return room, "ignored"  # a message id is unique among the room's live messages
            kept, horizon = [*messages, sent_message(event)], room["horizon"]
            if len(kept) > self.window:  # the oldest live message leaves for the store's pages
                horizon = kept[0]["version"] + 1
                kept = kept[1:]
            return {**room, "messages": kept, "horizon": horizon}, "sent"
        if found is None:
            return room, "outside_window"
        changed = self.change(messages[found], event)
        if isinstance(changed, str):
            return room, "ignored"
        rest = [] if changed is None else [changed]
        kept = [*messages[:found], *rest, *messages[found + 1 :]]
        return {**room, "messages": kept}, "deleted" if changed is None else "edited"

    def fold(self, room: State | None, event: Event) -> State:
        current = room or empty_room()
        if event.type == READ:
            after, outcome = self.receipt(current, event)
        else:
            after, outcome = self.step(current, event)
        counts = dict(current["counts"])
        counts[outcome] = counts.get(outcome, 0) + 1
        if "reads" in after:
            after = {**after, "reads": unread_counts(after["messages"], after["reads"])}
        return {**after, "counts": counts}

    def receipt(self, room: State, event: Event) -> tuple[State, str]:
        """A read receipt moves its reader forward to a message the window holds, never back."""
        reader, message_id = event.data["reader_id"], event.data["up_to_message_id"]
        found = find(room["messages"], message_id)
        if found is None:
            return room, "outside_window"
        version = room["messages"][found]["version"]
        reads: dict[str, Read] = dict(room.get("reads", {}))
        if reads.get(reader, {}).get("up_to_version", 0) >= version:
            return room, "ignored"  # a receipt never moves backwards
        reads[reader] = {"up_to_message_id": message_id, "up_to_version": version, "unread": 0}
        return {**room, "reads": reads}, "read"

    def reduce(self, state: State | None, event: Event) -> State:
        """The replay reducer: the bounded window, the horizon and the counts."""
        return self.fold(state, event)

    def apply_view(self, view: View | None, event: Event) -> View:
        """The ``chat_messages`` view of one room after one stored event (pure)."""
        return {**self.fold(view, event), "updated_at": iso(event.occurred_at)}

    def lift_delete(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Schema version 1 -> 2 of MessageDeleted: an old delete was a moderator's act."""
        return {**data, "sender_id": LEGACY_ACTOR, "role": min(self.moderator_roles)}


def unread_counts(messages: Sequence[Message], reads: Mapping[str, Read]) -> dict[str, Read]:
    """Each reader's unread count: the live messages of others in the window after its receipt."""
    return {
        reader: {
            **read,
            "unread": sum(
                1
                for m in messages
                if m["version"] > read["up_to_version"] and m["sender_id"] != reader
            ),
        }
        for reader, read in reads.items()
    }


def empty_room() -> State:
    return {"messages": [], "horizon": 1, "counts": dict.fromkeys(OUTCOMES, 0)}
