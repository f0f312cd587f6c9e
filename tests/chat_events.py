"""Chat room events as the tests write them: one event of any kind (``chat``) and the three a
member sends (``sent``, ``edited``, ``deleted``), and stored-looking histories numbered from a
version (``room_events``), with ``CONVERSATION``, a history that edits, deletes and is refused.
Each event occurs ``version`` seconds after ``T0``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from topics.envelope import Event, new_event
from workers.examples.domains.chat_room import CHAT_ROOM

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROOM = "chat_room"


def chat(kind: str, version: int = 1, room: str = "r1", *, schema: int = 2, **data: Any) -> Event:
    """Event ``kind`` of ``room`` with ``data``; a deletion at schema version ``schema``."""
    at = T0 + timedelta(seconds=version)
    schema_version = schema if kind == "MessageDeleted" else 1
    return new_event(
        ROOM, room, kind, data, version=version, occurred_at=at, schema_version=schema_version
    )


def sent(mid: str, sender: str, content: str, version: int = 1) -> Event:
    return chat("MessageSent", version, message_id=mid, sender_id=sender, content=content)


def edited(mid: str, sender: str, content: str, version: int) -> Event:
    return chat("MessageEdited", version, message_id=mid, sender_id=sender, content=content)


def deleted(mid: str, sender: str, version: int, role: str | None = None) -> Event:
    extra = {} if role is None else {"role": role}
    return chat("MessageDeleted", version, message_id=mid, sender_id=sender, **extra)


def room_events(room: str, ops: list[tuple[str, str, str]], first: int = 1) -> list[Event]:
    """Stored-looking events: ``(type, message_id, sender)`` numbered from ``first``, each at its
    kind's current schema version."""
    out = []
    for version, (kind, mid, sender) in enumerate(ops, start=first):
        data: dict[str, Any] = {"message_id": mid, "sender_id": sender}
        if kind != "MessageDeleted":
            data["content"] = f"{kind} v{version}"
        at = T0 + timedelta(seconds=version)
        schema = CHAT_ROOM.schema_version(kind)
        stamped = {"version": version, "occurred_at": at, "schema_version": schema}
        out.append(new_event(ROOM, room, kind, data, **stamped))
    return out


CONVERSATION = [
    ("MessageSent", "m1", "ann"),
    ("MessageSent", "m2", "bob"),
    ("MessageEdited", "m1", "ann"),
    ("MessageEdited", "m2", "ann"),  # not her message: ignored
    ("MessageDeleted", "m1", "ann"),
    ("MessageEdited", "m1", "ann"),  # deleted: no longer in the window
    ("MessageSent", "m3", "cy"),
]
