"""The chat room's fold: a bounded window of the newest messages, and the rule for changing one.

Pure and shared: the replayed state, the ``chat_messages`` view and the backwards pages of
older messages (``chat_pages``) all change messages with ``ChatRules.change``. See
``chat_room`` for why the fold, not the marker, enforces who may edit or delete.

**Receipts are bounded too.** ``reads`` keeps at most ``readers`` members (declared, default
1000), ordered least recently read first: an accepted receipt moves its reader to the end, and
a receipt from a new member past the cap evicts the first (counted in ``readers_evicted``). A
receipt never changes any other member's entry, and a message event never touches ``reads``:
a fold costs the same with 0 or 10,000 members. Unread counts are not stored (a stored count
per member would change for every member on every message); ``unread_counts`` derives them
from the window when an answer needs them, by bisection over the window's versions.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from snapshot_rules.projection import View
from snapshot_rules.replay import State
from topics.envelope import Event
from topics.jsonvalue import Json, JsonObject

SENT, EDITED, DELETED = "MessageSent", "MessageEdited", "MessageDeleted"
READ = "MessageRead"
"""A read receipt: ``reader_id`` has read every message up to ``up_to_message_id``."""
MAX_CONTENT = 4000
DEFAULT_WINDOW = 100
"""Messages a room's state keeps: the recent history a chat shows on joining."""
MAX_WINDOW = 1000
DEFAULT_READERS = 1000
"""Members whose receipts a room keeps; a new member's receipt past it evicts the least
recently read."""
MAX_READERS = 10_000
"""The largest ``readers`` a room may declare: 10,000 receipts of 128-character ids stay under
3 MB, far from the 16 MB a snapshot or view document may hold."""
LEGACY_ACTOR = "unknown"
"""``sender_id`` of a delete stored before deletes carried their actor (schema version 1)."""
OUTCOMES = ("sent", "edited", "deleted", "ignored", "outside_window")
"""Counts in the state: ``outside_window`` are edits and deletes of messages the window does
not hold (older ones, whose pages apply them, or unknown ones)."""

Read = JsonObject
"""One member's receipt in ``room["reads"][reader_id]``: ``{up_to_message_id, up_to_version}``.
The keys ``reads`` and ``readers_evicted`` appear with the room's first receipt. States stored
before receipts were bounded (each entry with a stored ``unread``, no ``readers_evicted``) are
read by ``ChatRules.upgrade``."""

Message = JsonObject
"""``{message_id, sender_id, content, sent_at, edited, edited_at, version}``; times are
ISO-8601 UTC strings, ``version`` is the version of its ``MessageSent``."""


def iso(moment: datetime) -> str:
    """Millisecond UTC text: the same in the view, in snapshots and in answers (no BSON dates)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def find(messages: Sequence[Message], message_id: Json) -> int | None:
    """The index of ``message_id`` in the window, searched from the newest (receipts and edits
    name recent messages; ids are unique in the window, so the direction changes no answer)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["message_id"] == message_id:
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
    readers: int = DEFAULT_READERS

    def change(self, message: Message, event: Event) -> Message | str | None:
        """``message`` after an edit or delete: the new message, None (deleted) or "ignored"."""
        data = event.data
        if event.type == EDITED:
            own = data.get("sender_id") == message["sender_id"]
            if not own and data.get("role") not in self.moderator_roles:
                return "ignored"  # only the sender or a moderator may edit a message
            return {
                **message,
                "content": data["content"],
                "edited": True,
                "edited_at": iso(event.occurred_at),
            }
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
        if "reads" in current and (
            "readers_evicted" not in current or len(current["reads"]) > self.readers
        ):
            current = self.upgrade(current)
        if event.type == READ:
            after, outcome = self.receipt(current, event)
        else:
            after, outcome = self.step(current, event)
        counts = dict(current["counts"])
        counts[outcome] = counts.get(outcome, 0) + 1
        return {**after, "counts": counts}

    def receipt(self, room: State, event: Event) -> tuple[State, str]:
        """A read receipt moves its reader forward to a message the window holds, never back,
        and makes it the most recently read; past ``readers`` the least recently read leaves."""
        reader, message_id = event.data["reader_id"], event.data["up_to_message_id"]
        found = find(room["messages"], message_id)
        if found is None:
            return room, "outside_window"
        version = room["messages"][found]["version"]
        reads: dict[str, Read] = room.get("reads", {})
        previous = reads.get(reader)
        if previous is not None and previous["up_to_version"] >= version:
            return room, "ignored"  # a receipt never moves backwards
        # One shallow copy (dict.copy clones the table: 2 us for 1,000 members, where dict(...)
        # re-inserts each after deletions: 18 us); the other members' entries are shared.
        kept = reads.copy()
        if previous is not None:
            del kept[reader]  # re-inserted last: the most recently read
        kept[reader] = {"up_to_message_id": message_id, "up_to_version": version}
        evicted = room.get("readers_evicted", 0)
        while len(kept) > self.readers:
            del kept[next(iter(kept))]  # the least recently read
            evicted += 1
        return {**room, "reads": kept, "readers_evicted": evicted}, "read"

    def upgrade(self, room: State) -> State:
        """A state of another shape or cap read as this one's: a state stored before receipts were
        bounded (ordered by first receipt, each with a stored ``unread``) is ordered by the
        version read (the member who read least far counts as least recently read), its counts
        dropped, and cut to ``readers``; a state over a lowered cap is cut. Once per state."""
        reads: Mapping[str, Read] = room["reads"]
        if "readers_evicted" in room:
            ordered = list(reads.items())
        else:
            ordered = sorted(reads.items(), key=lambda item: item[1]["up_to_version"])
        cut = max(0, len(ordered) - self.readers)
        kept = {
            reader: {
                "up_to_message_id": read["up_to_message_id"],
                "up_to_version": read["up_to_version"],
            }
            for reader, read in ordered[cut:]
        }
        return {**room, "reads": kept, "readers_evicted": room.get("readers_evicted", 0) + cut}

    def reduce(self, state: State | None, event: Event) -> State:
        """The replay reducer: the bounded window, the horizon and the counts."""
        return self.fold(state, event)

    def apply_view(self, view: View | None, event: Event) -> View:
        """The ``chat_messages`` view of one room after one stored event (pure)."""
        return {**self.fold(view, event), "updated_at": iso(event.occurred_at)}

    def lift_delete(self, data: Mapping[str, Json]) -> JsonObject:
        """Schema version 1 -> 2 of MessageDeleted: an old delete was a moderator's act."""
        return {**data, "sender_id": LEGACY_ACTOR, "role": min(self.moderator_roles)}


def unread_counts(room: State) -> dict[str, JsonObject]:
    """Each kept reader's receipt with ``unread``: the live messages of others in the window
    after its receipt. Derived on demand (an answer's cost, not a fold's): one pass over the
    window, then a bisection per reader."""
    messages: Sequence[Message] = room["messages"]
    versions = [m["version"] for m in messages]  # ascending: messages are kept in send order
    own: dict[str, list[int]] = {}
    for m in messages:
        own.setdefault(m["sender_id"], []).append(m["version"])
    answer: dict[str, JsonObject] = {}
    for reader, read in room.get("reads", {}).items():
        up_to = read["up_to_version"]
        unread = len(versions) - bisect_right(versions, up_to)
        mine = own.get(reader)
        if mine:
            unread -= len(mine) - bisect_right(mine, up_to)
        answer[reader] = {
            "up_to_message_id": read["up_to_message_id"],
            "up_to_version": up_to,
            "unread": unread,
        }
    return answer


def empty_room() -> State:
    return {"messages": [], "horizon": 1, "counts": dict.fromkeys(OUTCOMES, 0)}
