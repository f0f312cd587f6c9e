"""Example domain **chat_room** (async, marker-validated): messages sent, edited and deleted.

The marker only knows the room's last event *type*, so it cannot tell whose message an
edit targets or whether that message still exists. Those rules are enforced where the
whole room is known, by the fold itself: the replay reducer here and the ``chat_messages``
view (``CHAT_MESSAGES``, below) both call ``step_messages``, which *ignores* an edit of someone else's,
a deleted or an unknown message, a delete of an unknown message and a repeated message id,
and counts it in ``ignored``. The event stays in the store (it happened: it was requested
and accepted), but it changes no message, in the view and in replay alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from snapshot_rules.domain import NEW, Domain, Route, event
from snapshot_rules.projection import Projection, View
from snapshot_rules.queries import Query, QueryAnswer, QueryContext
from snapshot_rules.replay import Folded, State
from snapshot_rules.rules import every
from snapshot_rules.schema import Text, fields
from topics.envelope import AGGREGATE_ID_RE, Event, parse_utc
from topics.errors import InvalidEnvelope, InvalidInput, NotFound

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


def apply_chat_view(view: View | None, event: Event) -> View:
    """The ``chat_messages`` view of one room after one stored event (pure)."""
    current = view or {"messages": [], "ignored": 0, "updated_at": None}
    messages = step_messages(current["messages"], event)
    updated = {**current, "updated_at": iso(event.occurred_at)}
    if messages is None:
        return {**updated, "ignored": current["ignored"] + 1}
    return {**updated, "messages": messages}


CHAT_MESSAGES = Projection(
    name="chat_messages",
    collection="chat_messages",
    aggregate_types=frozenset(["chat_room"]),
    apply=apply_chat_view,
)

DEFAULT_LIMIT = 100
"""The bounded window: a room query answers at most this many of the newest messages by default."""
MAX_LIMIT = 1000
SOURCES = ("view", "replay")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}\Z")


@dataclass(frozen=True, slots=True)
class RoomQuery:
    """One parsed ``GET /v1/rooms/{room_id}/messages``."""

    room_id: str
    limit: int
    before: str | None
    source: str
    as_of: str | None

    @classmethod
    def parse(cls, room_id: str, query: Mapping[str, str]) -> RoomQuery:
        if not AGGREGATE_ID_RE.match(room_id):
            raise InvalidInput(f"room id {room_id!r} must match {AGGREGATE_ID_RE.pattern}.")
        raw_limit = query.get("limit") or str(DEFAULT_LIMIT)
        if not _WHOLE_NUMBER.match(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise InvalidInput(
                f"query parameter limit={raw_limit!r} must be a whole number from 1 to {MAX_LIMIT}."
            )
        as_of = query.get("as_of") or None
        source = query.get("source") or ("replay" if as_of else "view")
        if source not in SOURCES:
            raise InvalidInput(f"query parameter source={source!r} must be 'view' or 'replay'.")
        if as_of and source == "view":
            raise InvalidInput(
                "as_of is answered from replay only; drop source=view or use source=replay."
            )
        return cls(room_id, int(raw_limit), query.get("before") or None, source, as_of)


async def room_messages(
    context: QueryContext, params: Mapping[str, str], query: Mapping[str, str]
) -> QueryAnswer:
    """``GET /v1/rooms/{room_id}/messages``: the window from the view, or from replay.

    The same room can be answered from the view (fast, may lag behind the store) or from
    replay (snapshot + tail, exact at the moment it is read, and the only source for a past
    moment via ``as_of``). Both fold with ``step_messages``, so they agree once the view has
    caught up; the answer carries the version it reflects.
    """
    room_id = params["room_id"]
    parsed = RoomQuery.parse(room_id, query)
    try:
        if parsed.source == "view":
            found = await _from_view(context, parsed.room_id)
        else:
            found = await _from_replay(context, parsed.room_id, parsed.as_of)
    except InvalidEnvelope as e:
        raise InvalidInput(f"query parameter {e}.") from e
    if found is None:
        at = " at that point" if parsed.as_of else ""
        raise NotFound(f"chat room {room_id} has no events{at}.")
    version, messages = found
    page = window(messages, limit=parsed.limit, before=parsed.before)
    body = {"room_id": room_id, "source": parsed.source, "version": version, "messages": page}
    return QueryAnswer(200, body)


async def _from_view(context: QueryContext, room_id: str) -> tuple[int, list[Any]] | None:
    ref = ("chat_room", room_id)
    doc = await context.view(CHAT_MESSAGES.name, ref)
    if doc is not None:
        return doc.version, list(doc.view["messages"])
    # No view yet: an unknown room, or one the projection has not reached.
    return (0, []) if await context.has_events(ref) else None


async def _from_replay(
    context: QueryContext, room_id: str, as_of: str | None
) -> tuple[int, list[Any]] | None:
    folded: Folded
    if as_of is None:
        folded = await context.latest("chat_room", room_id)
    else:
        folded = await context.state_at("chat_room", room_id, as_of=parse_utc(as_of, "as_of"))
    if folded.version == 0 or folded.state is None:
        return None
    return folded.version, list(folded.state["messages"])


ROOM_MESSAGES = Query("/v1/rooms/{room_id}/messages", room_messages)

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
    projections=(CHAT_MESSAGES,),
    queries=(ROOM_MESSAGES,),
)
